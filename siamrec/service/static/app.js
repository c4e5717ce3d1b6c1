// The siamrec page: every value from the service is put on the page as text (textContent, text nodes),
// never parsed as HTML. Plain JS, no build step, no framework.
"use strict";

const KEY_NAME = "siamrec-api-key";
const RECOMMENDATIONS = 10;
const TRACKS_SHOWN = 50;
const PLAYLISTS_PAGE = 100; // playlists listed at a time; "More playlists" asks the service for the next page
const SEARCH_DELAY_MS = 250;
const MAP_FOCUSABLE = 300; // up to this many map points, each is a keyboard stop
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
  "#393b79"];
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const state = { playlist: null, blobUrl: null, keyWaiters: [], playlistsNext: null, searchTimer: null };

/** An element with attributes, listeners (onclick: fn) and children; strings become text nodes. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

function say(text) {
  $("status").textContent = text;
}

const enc = (uri) => encodeURIComponent(uri);
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
const trackLabel = (t) => (t.title || t.track_uri) + (t.artist ? ` — ${t.artist}` : "");

// ---- calls ------------------------------------------------------------------------------------------------

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY_NAME);
  return key ? { ...extra, "X-API-Key": key } : extra;
}

/** Ask for the API key (once for all waiting calls); resolves when one is entered. */
function askKey(wrong) {
  const form = $("key-form");
  form.hidden = false;
  $("app").hidden = true;
  say(wrong ? "That key was refused: enter the service's API key." : "Enter the service's API key.");
  $("key-input").focus();
  return new Promise((resolve) => state.keyWaiters.push(resolve));
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_NAME, $("key-input").value);
  $("key-input").value = "";
  $("key-form").hidden = true;
  $("app").hidden = false;
  say("");
  const waiters = state.keyWaiters.splice(0);
  waiters.forEach((resolve) => resolve());
});

/** fetch with the key; a 401 asks for the key and tries again; other errors throw the problem's detail. */
async function call(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
    if (response.status === 401) {
      const hadKey = sessionStorage.getItem(KEY_NAME) !== null;
      sessionStorage.removeItem(KEY_NAME);
      await askKey(hadKey);
      continue;
    }
    if (!response.ok) {
      let detail = `${response.status} ${response.statusText}`;
      try {
        const problem = await response.json();
        if (problem && typeof problem.detail === "string") detail = problem.detail;
      } catch (_) { /* not a problem document */ }
      throw new Error(detail);
    }
    return response;
  }
}

const getJson = async (path) => (await call(path)).json();
const postJson = async (path, body) =>
  (await call(path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }))
    .json();

function failed(what) {
  return (error) => say(`${what}: ${error.message}`);
}

// ---- the player -------------------------------------------------------------------------------------------

/** Play a stored track: streamed by URL (Range) without a key; fetched with the key header when one is set,
 * since an <audio> element cannot send headers. */
async function play(track) {
  const player = $("player");
  const url = `/tracks/${enc(track.track_uri)}/audio`;
  try {
    if (state.blobUrl) URL.revokeObjectURL(state.blobUrl);
    state.blobUrl = null;
    if (sessionStorage.getItem(KEY_NAME)) {
      state.blobUrl = URL.createObjectURL(await (await call(url)).blob());
      player.src = state.blobUrl;
    } else {
      player.src = url;
    }
    $("now-playing").textContent = `Playing: ${trackLabel(track)}`;
    player.dataset.trackUri = track.track_uri;
    await player.play();
  } catch (error) {
    say(`Cannot play ${trackLabel(track)}: ${error.message}`);
  }
}

$("player").addEventListener("error", () => {
  if ($("player").getAttribute("src")) say("The audio could not be played (the file is missing or unreadable).");
});

const playButton = (track) =>
  el("button", { type: "button", class: "play", "aria-label": `Play ${trackLabel(track)}`, onclick: () => play(track) },
    "▶ Play");

// ---- playlists ----------------------------------------------------------------------------------------------

const playlistItem = (p) =>
  el("li", {},
    el("button", {
      type: "button",
      class: "playlist",
      "data-uri": p.playlist_uri,
      "aria-pressed": String(state.playlist === p.playlist_uri),
      onclick: () => selectPlaylist(p.playlist_uri).catch(failed("Cannot open the playlist")),
    },
    el("span", { class: "name" }, p.name),
    el("span", { class: "count" }, plural(p.tracks, "track", "tracks"))));

/** The next page's path from a `Link: <…>; rel="next"` header; only a path of this service's own list. */
function nextPage(response) {
  const found = /<([^>]*)>;\s*rel="next"/.exec(response.headers.get("Link") || "");
  return found && found[1].startsWith("/playlists?") ? found[1] : null;
}

/** The first page of playlists with a word starting with each word the search box holds (all when empty). */
async function loadPlaylists() {
  const name = $("playlist-name").value;
  const query = new URLSearchParams({ limit: String(PLAYLISTS_PAGE) });
  if (name.trim()) query.set("words", name);
  const response = await call(`/playlists?${query}`);
  const playlists = await response.json();
  if ($("playlist-name").value !== name) return; // a newer search is on its way
  state.playlistsNext = nextPage(response);
  $("playlists").replaceChildren(...playlists.map(playlistItem));
  if (!playlists.length) {
    const none = name.trim() ? "No playlist's name has words starting so." : "No playlists yet.";
    $("playlists").replaceChildren(el("li", {}, none));
  }
  $("playlists-more").hidden = !state.playlistsNext;
}

async function morePlaylists() {
  const response = await call(state.playlistsNext);
  const playlists = await response.json();
  state.playlistsNext = nextPage(response);
  $("playlists").append(...playlists.map(playlistItem));
  $("playlists-more").hidden = !state.playlistsNext;
  say(`${plural($("playlists").querySelectorAll("button.playlist").length, "playlist", "playlists")} listed.`);
}

$("playlists-more").addEventListener("click", () => morePlaylists().catch(failed("Cannot list more playlists")));
$("playlist-search").addEventListener("submit", (event) => event.preventDefault());
$("playlist-name").addEventListener("input", () => {
  clearTimeout(state.searchTimer);
  state.searchTimer = setTimeout(() => loadPlaylists().catch(failed("Cannot find playlists")), SEARCH_DELAY_MS);
});

async function selectPlaylist(uri, focus = true) {
  state.playlist = uri;
  for (const button of $("playlists").querySelectorAll("button.playlist")) {
    button.setAttribute("aria-pressed", String(button.dataset.uri === uri));
  }
  const playlist = await getJson(`/playlists/${enc(uri)}`);
  if (state.playlist !== uri) return;
  $("playlist-heading").textContent = playlist.name;
  $("playlist-facts").textContent =
    `${plural(playlist.track_uris.length, "track", "tracks")}, ${playlist.tracks_with_audio} with audio`
    + ` · source: ${playlist.source}`;
  for (const button of $("playlists").querySelectorAll("button.playlist")) { // a kept track may have joined it
    if (button.dataset.uri === uri) button.querySelector(".count").textContent = plural(playlist.track_uris.length,
      "track", "tracks");
  }
  await Promise.all([loadRecommendations(uri), loadTracks(uri, playlist.track_uris), loadFeedback(uri)]);
  if (focus) $("playlist-heading").focus();
}

async function loadRecommendations(uri) {
  const found = await getJson(`/playlists/${enc(uri)}/recommendations?k=${RECOMMENDATIONS}`);
  if (state.playlist !== uri) return; // another playlist was chosen meanwhile
  const list = $("recommendations");
  list.replaceChildren(...found.results.map((r) => recommendationRow(uri, r)));
  if (!found.results.length) list.replaceChildren(el("li", {}, "No new tracks to recommend."));
  list.dataset.playlist = uri;
}

function recommendationRow(playlistUri, r) {
  const seeds = r.because_of.map((s) => `${trackLabel(s)} (${s.similarity.toFixed(2)})`).join("; ");
  return el("li", { class: "row", "data-uri": r.track_uri },
    el("div", { class: "what" },
      el("span", { class: "title" }, trackLabel(r)),
      el("span", { class: "score" }, `score ${r.score.toFixed(3)}`),
      seeds ? el("span", { class: "seeds" }, `because of ${seeds}`) : null),
    el("div", { class: "actions" },
      playButton(r),
      el("button", { type: "button", class: "accept", "aria-label": `Keep ${trackLabel(r)} in the playlist`,
        onclick: () => answer(playlistUri, r, "accept") }, "✓ Keep"),
      el("button", { type: "button", class: "reject", "aria-label": `Reject ${trackLabel(r)}`,
        onclick: () => answer(playlistUri, r, "reject") }, "✕ Reject")));
}

/** What the listener answered for this playlist so far, with a way to forget it. */
async function loadFeedback(uri) {
  const record = await getJson(`/playlists/${enc(uri)}/feedback`);
  if (state.playlist !== uri) return;
  $("feedback-counts").textContent =
    `Your answers: ${record.accepted.length} kept, ${record.rejected.length} rejected.`;
  $("feedback").hidden = !(record.accepted.length || record.rejected.length);
}

$("feedback-clear").addEventListener("click", async () => {
  const uri = state.playlist;
  try {
    await call(`/playlists/${enc(uri)}/feedback`, { method: "DELETE" });
    say("The answers are forgotten: rejected tracks may be recommended again (kept ones stay in the playlist).");
    await selectPlaylist(uri, false);
    $("recommendations-heading").focus();
  } catch (error) {
    say(`Cannot forget the answers: ${error.message}`);
  }
});

async function answer(playlistUri, track, verdict) {
  try {
    const result = await postJson(`/playlists/${enc(playlistUri)}/feedback`, { [verdict]: [track.track_uri] });
    const added = (result.added_to_playlist || []).includes(track.track_uri);
    say(verdict === "accept"
      ? `Kept ${trackLabel(track)}${added ? ": added to the playlist" : ""}.`
      : `Rejected ${trackLabel(track)}: it will not be recommended to this playlist again.`);
    await Promise.all([selectPlaylist(playlistUri, false), loadMap()]); // the list keeps its pages and search
    $("recommendations-heading").focus();
  } catch (error) {
    say(`Cannot ${verdict} ${trackLabel(track)}: ${error.message}`);
  }
}

async function loadTracks(playlistUri, uris) {
  const shown = uris.slice(0, TRACKS_SHOWN);
  const tracks = await Promise.all(shown.map((u) => getJson(`/tracks/${enc(u)}`).catch(() => ({ track_uri: u }))));
  if (state.playlist !== playlistUri) return;
  const rows = tracks.map((t) => el("li", { class: "row", "data-uri": t.track_uri },
    el("div", { class: "what" }, el("span", { class: "title" }, trackLabel(t))),
    el("div", { class: "actions" }, t.has_audio ? playButton(t) : el("span", { class: "hint" }, "no audio"))));
  if (uris.length > shown.length) rows.push(el("li", { class: "hint" }, `and ${uris.length - shown.length} more`));
  $("tracks").replaceChildren(...rows);
  $("tracks").dataset.playlist = playlistUri;
}

// ---- upload -----------------------------------------------------------------------------------------------

async function upload(file) {
  const result = $("upload-result");
  result.replaceChildren(el("p", {}, `Listening to ${file.name}…`));
  delete result.dataset.trackUri;
  const body = new FormData();
  body.append("audio", file);
  try {
    const added = await (await call("/tracks?k=5", { method: "POST", body })).json();
    const rows = added.playlists.map((p) => el("li", { class: "row" },
      el("div", { class: "what" },
        el("span", { class: "title" }, p.name),
        el("span", { class: "score" }, `score ${p.score.toFixed(3)}`),
        p.because_of.length ? el("span", { class: "seeds" }, `closest: ${p.because_of.map(trackLabel).join("; ")}`)
          : null),
      el("div", { class: "actions" }, el("button", { type: "button",
        onclick: () => selectPlaylist(p.playlist_uri).catch(failed("Cannot open the playlist")) }, "Open"))));
    result.replaceChildren(
      el("p", {}, `${added.created ? "Added" : "Already stored"}: ${trackLabel(added.track)} `,
        playButton(added.track)),
      el("h3", {}, "Playlists that suit it"),
      rows.length ? el("ol", { id: "suiting", class: "rows" }, ...rows) : el("p", {}, "No playlists yet."));
    result.dataset.trackUri = added.track.track_uri;
    say(`${trackLabel(added.track)}: ${plural(rows.length, "suiting playlist", "suiting playlists")}.`);
    await Promise.all([loadMap(), loadInfo()]);
  } catch (error) {
    result.replaceChildren(el("p", { class: "error" }, `Not added: ${error.message}`));
  }
}

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("upload-input").files[0];
  if (file) upload(file);
  else say("Choose an audio file first.");
});
$("upload-input").addEventListener("change", () => {
  const file = $("upload-input").files[0];
  if (file) upload(file);
});
const zone = $("drop-zone");
zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) upload(file);
});

// ---- the map ------------------------------------------------------------------------------------------------

async function loadMap() {
  const data = await getJson("/map");
  const width = 640, height = 400, pad = 12;
  const xs = data.points.map((p) => p.x), ys = data.points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (width - 2 * pad);
  const sy = (y) => height - pad - ((y - y0) / (y1 - y0 || 1)) * (height - 2 * pad);
  const colour = (p) => (p.playlist === null ? "#9a9a9a" : PALETTE[p.playlist % PALETTE.length]);
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label":
    `Map of ${data.tracks} tracks; colours are playlists` });
  const focusable = data.points.length <= MAP_FOCUSABLE;
  for (const p of data.points) {
    const name = p.playlist === null ? "no playlist" : data.playlists[p.playlist].name;
    const label = `${trackLabel(p)} (${name})`;
    const dot = svg("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 5, fill: colour(p),
      class: "point", "data-uri": p.track_uri });
    const tip = svg("title");
    tip.textContent = label;
    dot.append(tip);
    const show = () => { $("map-hover").textContent = label; };
    dot.addEventListener("mouseenter", show);
    dot.addEventListener("click", () => play(p));
    if (focusable) {
      dot.setAttribute("tabindex", "0");
      dot.setAttribute("role", "button");
      dot.setAttribute("aria-label", `Play ${label}`);
      dot.addEventListener("focus", show);
      dot.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); play(p); }
      });
    }
    plot.append(dot);
  }
  $("map").replaceChildren(plot);
  const legend = data.playlists.slice(0, PALETTE.length).map((p, i) =>
    el("li", {}, el("span", { class: "swatch", "data-colour": String(i) }), p.name));
  if (data.playlists.length > PALETTE.length) legend.push(el("li", { class: "hint" }, "colours repeat after 10"));
  $("map-legend").replaceChildren(...legend);
  for (const swatch of $("map-legend").querySelectorAll(".swatch")) {
    swatch.style.background = PALETTE[Number(swatch.dataset.colour)];
  }
}

// ---- store info ----------------------------------------------------------------------------------------------

async function loadInfo() {
  const info = await getJson("/info");
  const facts = [
    ["Tracks", `${info.tracks} (${info.cold_tracks} cold)`], ["Playlists", info.playlists],
    ["Model", `${info.model} ${info.model_version} (${info.dim} dims)`], ["Store", info.store],
    ["Ranking", info.metric], ["Uploads up to", `${(info.upload_limit_bytes / 1e6).toFixed(0)} MB, `
      + `${info.duration_limit_s} s`], ["Version", info.version],
  ];
  $("info").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
}

// ---- start --------------------------------------------------------------------------------------------------

async function start() {
  await loadPlaylists();
  const first = $("playlists").querySelector("button.playlist");
  await Promise.all([
    first ? selectPlaylist(first.dataset.uri, false) : Promise.resolve(),
    loadMap().catch(failed("Cannot draw the map")),
    loadInfo().catch(failed("Cannot read the store's info")),
  ]);
  document.body.dataset.ready = "true";
}

start().catch(failed("Cannot load"));
