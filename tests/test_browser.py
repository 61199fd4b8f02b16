"""A real browser opens the page, clicks Compose, and plays the WAV it gets (headless Chromium + Selenium)."""

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


def test_compose_in_the_browser_shows_the_roll_and_plays_a_wav(server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}"):
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
        src = driver.find_element(By.ID, "audio").get_attribute("src")
        assert src.endswith(".wav")
        wait.until(lambda d: d.execute_script("return document.getElementById('audio').readyState >= 1"))
        duration = driver.execute_script("return document.getElementById('audio').duration")
        assert duration > 0
        # it plays: currentTime moves
        driver.execute_script("const a = document.getElementById('audio'); a.muted = true; a.play();")
        wait.until(lambda d: d.execute_script("return document.getElementById('audio').currentTime") > 0.2)
        assert "seed" in driver.find_element(By.ID, "history").text
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
