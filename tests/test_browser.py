"""A real browser opens the page, clicks Compose, hears it at once (Web Audio) and downloads the WAV (headless
Chromium + Selenium)."""

import shutil
import socket
import threading
import time

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="Chromium and ChromeDriver are not installed (apt-get install chromium chromium-driver; "
           "`make test` does this where apt is available)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tiny_run, tmp_path):
    import uvicorn

    from gancomposer.web.app import create_app

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app({"tiny": tiny_run}, tmp_path / "out"), host="127.0.0.1",
                                        port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_compose_in_the_browser_shows_the_roll_plays_at_once_and_renders_wav_on_download(server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # no network but this server
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.set_window_size(1200, 1000)
        driver.get(server + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value") == "tiny")
        driver.find_element(By.ID, "bars").clear()
        driver.find_element(By.ID, "bars").send_keys("4")
        driver.find_element(By.ID, "compose").click()
        wait.until(lambda d: "done" in d.find_element(By.ID, "status").text)
        assert driver.find_element(By.ID, "player").is_displayed()
        # the piano roll was drawn: some canvas pixels are note-coloured
        painted = driver.execute_script(
            "const c = document.getElementById('roll');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i+2] > 150 && d[i] < 100) n++; return n;")
        assert painted > 50
        # it plays at once, in the browser: the audio context runs and the playhead moves, with no WAV rendered
        wait.until(lambda d: d.execute_script("return audio && audio.state === 'running' && playing !== null"))
        left = lambda d: float(d.find_element(By.ID, "playhead").value_of_css_property("left").rstrip("px"))  # noqa: E731
        first = left(driver)
        wait.until(lambda d: left(d) > first + 5)
        assert not list((tmp_path / "out").glob("*.wav"))
        # the WAV is rendered when downloaded, and is a real WAV
        head = driver.execute_async_script(
            "const done = arguments[0];"
            "fetch(document.getElementById('dl-wav').href).then(r => r.arrayBuffer())"
            ".then(b => done(Array.from(new Uint8Array(b.slice(0, 4))).concat([b.byteLength])));")
        assert bytes(head[:4]) == b"RIFF" and head[4] > 1000
        assert len(list((tmp_path / "out").glob("*.wav"))) == 1
        # the model's keys and meters are offered; Enter in a field composes again, in the key chosen; the
        # history lists both pieces, as buttons that say what they are
        from selenium.webdriver.support.ui import Select

        keys = [o.text for o in Select(driver.find_element(By.ID, "key")).options]
        assert keys[0] == "style's mix" and "D minor" in keys and len(keys) == 25
        assert [o.text for o in Select(driver.find_element(By.ID, "meter")).options] == ["style's mix", "4/4"]
        Select(driver.find_element(By.ID, "key")).select_by_visible_text("D minor")
        driver.find_element(By.ID, "seed").send_keys("7\n")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history button")) == 2)
        labels = [b.get_attribute("aria-label") for b in driver.find_elements(By.CSS_SELECTOR, "#history button")]
        assert labels[0].startswith("Play seed 7, D minor, 4/4") and all("bars" in x for x in labels)
        assert "D minor" in driver.find_element(By.ID, "title").text
        assert "seed" in driver.find_element(By.ID, "history").text
        driver.save_screenshot(str(tmp_path / "page.png"))
        # the API docs render from the package's own files, with no network
        driver.get(server + "/docs")
        wait.until(lambda d: "gancomposer" in d.execute_script(
            "const t = document.querySelector('.swagger-ui .info .title'); return t ? t.textContent : ''"))
        assert driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    finally:
        driver.quit()
