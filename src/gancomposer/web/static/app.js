// The page: compose through the JSON API, draw the piano roll, and play the notes at once with a small
// built-in synthesizer (Web Audio); the server renders WAV and PNG only when they are downloaded.
const $ = (id) => document.getElementById(id);
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
let current = null, audio = null, playing = null, roll = null;

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(path, body, signal) {
  const res = await fetch(path, body ? {method: "POST", headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify(body), signal} : {signal});
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
  const bar = piece.bar_quarters || 4, quarters = piece.bars * bar, [lo, hi] = piece.range;
  const pitches = piece.notes.map((n) => n[0]);
  const top = Math.min(hi, Math.max(...pitches, lo) + 2), bottom = Math.max(lo, Math.min(...pitches, hi) - 2);
  const rows = top - bottom + 1, w = canvas.width, h = canvas.height;
  const x = (q) => (q / quarters) * w, y = (p) => h - ((p - bottom + 1) / rows) * h;
  ctx.clearRect(0, 0, w, h);
  for (let p = bottom; p <= top; p++) {
    if ([1, 3, 6, 8, 10].includes(p % 12)) { ctx.fillStyle = "#f0f3f7"; ctx.fillRect(0, y(p), w, h / rows); }
  }
  ctx.strokeStyle = "#9aa7b6";
  for (let b = 0; b <= piece.bars; b++) { ctx.beginPath(); ctx.moveTo(x(b * bar), 0); ctx.lineTo(x(b * bar), h); ctx.stroke(); }
  for (const [p, s, d] of piece.notes) {
    ctx.fillStyle = "#2f6fd1"; ctx.fillRect(x(s), y(p), Math.max(1, x(s + d) - x(s) - 1), h / rows - 1);
    ctx.fillStyle = "#0b2d66"; ctx.fillRect(x(s), y(p), 2, h / rows - 1);
  }
  ctx.fillStyle = "#4a5563"; ctx.font = "11px sans-serif";  // note names on the pitch axis: every C
  for (let p = bottom; p <= top; p++) {
    if (p % 12 === 0) ctx.fillText(`${NAMES[p % 12]}${Math.floor(p / 12) - 1}`, 3, y(p) + h / rows - 2);
  }
}

function stop() {
  if (playing) { playing.master.disconnect(); playing = null; }
  $("play").textContent = "Play";
  markPlaying();
}

function play(piece, from = 0) {
  // one triangle-wave voice per note with a short attack and release: enough to hear the music at once
  stop();
  audio = audio || new AudioContext();
  audio.resume();
  const beat = 60 / piece.tempo, t0 = audio.currentTime + 0.05 - from;
  const master = audio.createGain();
  master.gain.value = 0.12;
  master.connect(audio.destination);
  for (const [p, s, d] of piece.notes) {
    const start = t0 + s * beat, end = start + d * beat;
    if (end <= audio.currentTime + 0.05) continue;
    const on = Math.max(start, audio.currentTime + 0.05);
    const osc = audio.createOscillator(), env = audio.createGain();
    osc.type = "triangle";
    osc.frequency.value = 440 * 2 ** ((p - 69) / 12);
    env.gain.setValueAtTime(0, on);
    env.gain.linearRampToValueAtTime(0.6, on + 0.01);
    env.gain.setTargetAtTime(0, Math.max(on + 0.01, end - 0.03), 0.02);
    osc.connect(env).connect(master);
    osc.start(on);
    osc.stop(end + 0.2);
  }
  playing = {piece, t0, master};
  $("play").textContent = "Stop";
  markPlaying();
}

function markPlaying() {
  for (const b of $("history").querySelectorAll("button")) {
    const on = playing && b.dataset.id === playing.piece.id;
    b.setAttribute("aria-current", on ? "true" : "false");
  }
}

function show(piece, autoplay = true) {
  current = piece;
  $("player").hidden = false;
  const t = piece.temperature !== undefined ? ` · temperature ${piece.temperature}` : "";
  const k = [piece.key, piece.meter].filter(Boolean).map((x) => ` · ${x}`).join("");
  $("title").textContent = `${piece.label || piece.name}${k} · ${piece.bars} bars · ${piece.seconds} s${t}`;
  drawRoll(piece);
  $("dl-mid").href = piece.files.mid; $("dl-wav").href = piece.files.wav; $("dl-png").href = piece.files.png;
  $("playhead").style.left = "0px";
  if (autoplay) play(piece); else stop();
}

function describe(piece) {
  const when = new Date(piece.created * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  const t = piece.temperature !== undefined ? `, temperature ${piece.temperature}` : "";
  const k = [piece.key, piece.meter].filter(Boolean).map((x) => `, ${x}`).join("");
  return `${piece.kind === "interpolate" ? "morph" : "seed " + piece.seed}${k}${t}, ${piece.bars} bars, ${when}`;
}

function addHistory(piece) {
  const li = document.createElement("li"), button = document.createElement("button");
  button.type = "button";
  button.dataset.id = piece.id;
  button.textContent = describe(piece);
  button.setAttribute("aria-label", `Play ${describe(piece)}`);
  button.onclick = async () => show(await api(`/api/pieces/${piece.id}`));
  li.appendChild(button);
  $("history").prepend(li);
}

function tick() {
  if (playing) {
    const frac = (audio.currentTime - playing.t0) / playing.piece.seconds;
    if (frac >= 1) stop();
    else if (playing.piece === current) $("playhead").style.left = `${Math.max(0, frac) * $("roll").clientWidth}px`;
  }
  requestAnimationFrame(tick);
}

async function run(button, label, request) {
  // request(job, signal): a job id the server reports progress under, and a signal that cancels the request
  button.disabled = true;
  setStatus(`${label}…`);
  const t = performance.now(), abort = new AbortController();
  const job = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  $("cancel").hidden = false;
  $("cancel").onclick = () => abort.abort();
  const poll = setInterval(async () => {
    try {
      const p = await api(`/api/progress/${job}`);
      setStatus(`${label}… ${Math.round(100 * p.progress)} % (${((performance.now() - t) / 1000).toFixed(0)} s)`);
    } catch (err) { /* not started yet, or finished */ }
  }, 400);
  try {
    const data = await request(job, abort.signal);
    data.pieces.forEach(addHistory);
    show(data.pieces[0]);
    setStatus(`${label} done in ${((performance.now() - t) / 1000).toFixed(1)} s` +
              (data.seed !== undefined ? ` (seed ${data.seed})` : ""));
    return data;
  } catch (err) {
    setStatus(abort.signal.aborted ? `${label} cancelled` : `${label} failed: ${err.message}`, !abort.signal.aborted);
  } finally {
    clearInterval(poll);
    $("cancel").hidden = true;
    button.disabled = false;
  }
}

function number(id, label) {
  const v = $(id).value.trim();
  if (v === "" || !Number.isFinite(Number(v))) throw new Error(`${label}: enter a number`);
  return Number(v);
}

function optional(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function compose() {
  return run($("compose"), "Composing", (job, signal) => api("/api/compose", {
    model: $("model").value, bars: number("bars", "Bars"), temperature: optional("temperature"),
    seed: optional("seed"), key: $("key").value || null, meter: $("meter").value || null, job,
  }, signal));
}

$("compose-form").onsubmit = (e) => { e.preventDefault(); compose(); };  // the button, or Enter in a field

async function morph() {
  const data = await run($("interpolate"), "Interpolating", (job, signal) => api("/api/interpolate", {
    model: $("model").value, seed_a: number("seed-a", "Seed A"), seed_b: number("seed-b", "Seed B"),
    pieces: number("pieces", "Pieces"), bars: number("morph-bars", "Bars"), temperature: optional("temperature"),
  }, signal));
  if (data) { $("walk").href = data.walk; $("walk").hidden = false; }
}

$("morph-form").onsubmit = (e) => { e.preventDefault(); morph(); };
$("play").onclick = () => { if (playing) stop(); else if (current) play(current); };
$("roll").onclick = (e) => {  // clicking the roll plays from there
  if (!current) return;
  const r = $("roll").getBoundingClientRect();
  play(current, ((e.clientX - r.left) / r.width) * current.seconds);
};

(async () => {
  try {
    const models = await api("/api/models");
    for (const m of models) $("model").add(new Option(m.name, m.name));
    const choices = () => {  // the keys and meters of the chosen model
      const m = models.find((x) => x.name === $("model").value) || {keys: [], meters: []};
      for (const [id, values] of [["key", m.keys], ["meter", m.meters]]) {
        $(id).length = 1;
        for (const v of values) $(id).add(new Option(v, v));
        $(id).disabled = !values.length;
      }
    };
    $("model").onchange = choices;
    choices();
    if (!models.length) setStatus("No model found: train one, or reinstall the package.", true);
    (await api("/api/pieces")).forEach(addHistory);  // what the folder still holds, from earlier runs too
  } catch (err) { setStatus(`Could not reach the server: ${err.message}`, true); }
  requestAnimationFrame(tick);
})();
