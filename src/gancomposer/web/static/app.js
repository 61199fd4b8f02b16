// The page: compose through the JSON API, draw the piano roll, play the server-rendered WAV with a playhead.
const $ = (id) => document.getElementById(id);
let current = null;

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(path, body) {
  const res = await fetch(path, body ? {method: "POST", headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify(body)} : {});
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => `${d.loc.slice(-1)}: ${d.msg}`).join("; ")
                                              : (data.detail || res.statusText);
    throw new Error(detail);
  }
  return data;
}

function drawRoll(piece) {
  const canvas = $("roll"), ctx = canvas.getContext("2d");
  const quarters = piece.bars * 4, [lo, hi] = piece.range;
  const pitches = piece.notes.map((n) => n[0]);
  const top = Math.min(hi, Math.max(...pitches, lo) + 2), bottom = Math.max(lo, Math.min(...pitches, hi) - 2);
  const rows = top - bottom + 1, w = canvas.width, h = canvas.height;
  const x = (q) => (q / quarters) * w, y = (p) => h - ((p - bottom + 1) / rows) * h;
  ctx.clearRect(0, 0, w, h);
  for (let p = bottom; p <= top; p++) {
    if ([1, 3, 6, 8, 10].includes(p % 12)) { ctx.fillStyle = "#f0f3f7"; ctx.fillRect(0, y(p), w, h / rows); }
  }
  ctx.strokeStyle = "#9aa7b6";
  for (let b = 0; b <= piece.bars; b++) { ctx.beginPath(); ctx.moveTo(x(b * 4), 0); ctx.lineTo(x(b * 4), h); ctx.stroke(); }
  for (const [p, s, d] of piece.notes) {
    ctx.fillStyle = "#2f6fd1"; ctx.fillRect(x(s), y(p), Math.max(1, x(s + d) - x(s) - 1), h / rows - 1);
    ctx.fillStyle = "#0b2d66"; ctx.fillRect(x(s), y(p), 2, h / rows - 1);
  }
}

function show(piece) {
  current = piece;
  $("player").hidden = false;
  $("title").textContent = `${piece.name} · ${piece.model} · ${piece.bars} bars · ${piece.seconds} s`;
  drawRoll(piece);
  $("audio").src = piece.files.wav;
  $("dl-mid").href = piece.files.mid; $("dl-wav").href = piece.files.wav; $("dl-png").href = piece.files.png;
  $("playhead").style.left = "0px";
}

function addHistory(piece) {
  const li = document.createElement("li");
  li.textContent = `${piece.name} (${piece.bars} bars, ${piece.kind})`;
  li.onclick = async () => show(await api(`/api/pieces/${piece.id}`));
  $("history").appendChild(li);
}

function tick() {
  const audio = $("audio");
  if (current && audio.duration) {
    const frac = Math.min(1, audio.currentTime / (current.seconds || audio.duration));
    $("playhead").style.left = `${frac * $("roll").clientWidth}px`;
  }
  requestAnimationFrame(tick);
}

async function run(button, label, request) {
  button.disabled = true;
  setStatus(`${label}…`);
  const t = performance.now();
  try {
    const data = await request();
    data.pieces.forEach(addHistory);
    show(data.pieces[0]);
    setStatus(`${label} done in ${((performance.now() - t) / 1000).toFixed(1)} s` +
              (data.seed !== undefined ? ` (seed ${data.seed})` : ""));
    return data;
  } catch (err) {
    setStatus(`${label} failed: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

$("compose").onclick = () => run($("compose"), "Composing", () => api("/api/compose", {
  model: $("model").value, bars: Number($("bars").value), temperature: $("temperature").value === "" ? null : Number($("temperature").value),
  seed: $("seed").value === "" ? null : Number($("seed").value),
}));

$("interpolate").onclick = async () => {
  const data = await run($("interpolate"), "Interpolating", () => api("/api/interpolate", {
    model: $("model").value, seed_a: Number($("seed-a").value), seed_b: Number($("seed-b").value),
    pieces: Number($("pieces").value), temperature: $("temperature").value === "" ? null : Number($("temperature").value),
  }));
  if (data) { $("walk").href = data.walk; $("walk").hidden = false; }
};

(async () => {
  try {
    const models = await api("/api/models");
    for (const m of models) $("model").add(new Option(m.name, m.name));
    if (!models.length) setStatus("No model found: train one, or reinstall the package.", true);
    (await api("/api/pieces")).forEach(addHistory);
  } catch (err) { setStatus(`Could not reach the server: ${err.message}`, true); }
  requestAnimationFrame(tick);
})();
