// The live distribution chart: one step's rows drawn in HTML from views.distribution_chart_data's JSON (the
// component's value). Run by Gradio's gr.HTML as js_on_load, with `element` (the component's root), `props`
// (its value), `trigger` (sends an event to the server) and `watch` (re-runs a function when the value
// changes). playground/ui/live_chart.py puts `const CSS = "...";` (assets/live_chart.css) before this code.
//
// Rows are keyed by token id and kept between steps, so a knob's change moves them (CSS transitions); every
// text is set with textContent, never as markup. A click or Enter on a row asks to take that token:
// trigger('select', {index, value: token_id, token_id, token, step, pending}). Nothing here is fetched from
// the network.

if (!document.getElementById('dp-lc-style')) {
  const style = document.createElement('style');
  style.id = 'dp-lc-style';
  style.textContent = CSS;
  document.head.appendChild(style);
}

const ROW = 36;  // px per row: the model's bar above the after-knobs bar (see --dp-lc-row)
const GAP = Math.round(ROW * 0.8);  // the gap before an extra row (the chosen token, ranked lower)
const BAND = 24;  // px above the rows for top-p's label, when top-p is on
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) { e.className = cls; }
  if (text !== undefined) { e.textContent = text; }
  return e;
};
const pct = (p) => (p === null || p === undefined || !isFinite(p)) ? 'n/a' : (100 * p).toFixed(2) + '%';
const pctFine = (p) => (p > 0 && p < 1e-4) ? (100 * p).toPrecision(2) + '%' : pct(p);

const root = el('div', 'dp-lc');
root.setAttribute('data-testid', 'dp-live-chart');
element.replaceChildren(root);
const empty = el('div', 'dp-lc-empty', 'Type a prompt: the next token\u2019s distribution appears here.');
const title = el('div', 'dp-lc-title');
const head = el('div', 'dp-lc-head');
const sub = el('div', 'dp-lc-sub');
title.append(head, sub);
const plot = el('div', 'dp-lc-plot');  // its rows are buttons named by their numbers (aria-label)
const axis = el('div', 'dp-lc-axis');
axis.setAttribute('aria-hidden', 'true');  // the ticks: the table below is what a screen reader reads
const rowsBox = el('div', 'dp-lc-rows');
const grid = el('div', 'dp-lc-grid');
rowsBox.appendChild(grid);
plot.append(axis, rowsBox);
const rest = el('div', 'dp-lc-rest');
const legend = el('ul', 'dp-lc-legend');
const hint = el('div', 'dp-lc-hint');
const srBox = el('div', 'dp-lc-sr');  // visually hidden, read by screen readers
const table = el('table');
srBox.appendChild(table);
const tip = el('div', 'dp-lc-tip');
tip.setAttribute('role', 'tooltip');
tip.hidden = true;
root.append(empty, title, plot, rest, legend, hint, srBox, tip);

let data = null;
const rowEls = new Map();  // token id -> its row element, kept between steps
let gapEl = null;
let lastPointer = 'mouse';
let tipFor = null;  // the token id whose numbers the tip shows

function parse(value) {
  if (!value) { return null; }
  if (typeof value === 'object') { return value; }
  try { return JSON.parse(value); } catch (e) { console.error('live chart: bad value', e); return null; }
}

// x of a probability along the track, in [0, 1]
function xOf(p) {
  if (!(p > 0)) { return 0; }
  if (!data.log_scale) { return Math.min(1, p); }
  const lo = Math.log10(data.log_floor);
  return Math.min(1, Math.max(0, (Math.log10(p) - lo) / -lo));
}

function ticks() {
  if (data.log_scale) {
    const out = [];
    for (let e = Math.round(Math.log10(data.log_floor)); e <= 0; e++) { out.push(Math.pow(10, e)); }
    return out;
  }
  return [0, 0.25, 0.5, 0.75, 1];
}
const tickText = (p) => (p >= 0.01 || p === 0) ? Math.round(100 * p) + '%' : +(100 * p).toPrecision(1) + '%';

function markFor(r) { return r.forced ? data.colors.forced : data.colors.chosen; }
function noteWords(r) {
  const words = [];
  if (r.chosen) {
    const w = data.pending ? (data.greedy ? 'will pick' : 'would draw') : (r.forced ? 'forced' : 'chosen');
    words.push('\u25c0 ' + w);
  }
  if (r.cut && r.cutFirst) { words.push('\u2702 ' + r.cut); }
  return words.join(' \u00b7 ');
}

function makeRow(r) {
  const row = el('div', 'dp-lc-row');
  row.dataset.tokenId = String(r.token_id);
  row.tabIndex = 0;
  row.setAttribute('role', 'button');
  const label = el('div', 'dp-lc-label');
  const track = el('div', 'dp-lc-track');
  const raw = el('div', 'dp-lc-bar dp-lc-raw');
  const after = el('div', 'dp-lc-bar dp-lc-after');
  const cum = el('div', 'dp-lc-cum');
  const up = el('div', 'dp-lc-up');
  const down = el('div', 'dp-lc-down');
  const dot = el('div', 'dp-lc-dot');
  const note = el('span', 'dp-lc-note');
  track.append(raw, after, cum, up, down, dot, note);
  row.append(label, track);
  row.style.opacity = '0';
  row.addEventListener('pointerdown', (e) => { lastPointer = e.pointerType || 'mouse'; });
  row.addEventListener('mouseenter', () => showTip(Number(row.dataset.tokenId), false));
  row.addEventListener('mouseleave', () => { if (lastPointer === 'mouse') { hideTip(); } });
  row.addEventListener('focus', () => showTip(Number(row.dataset.tokenId), false));
  row.addEventListener('blur', (e) => { if (!tip.contains(e.relatedTarget)) { hideTip(); } });
  row.addEventListener('click', () => {
    const id = Number(row.dataset.tokenId);
    if (lastPointer === 'touch') { showTip(id, true); return; }  // a tap shows the numbers and a button
    take(id);
  });
  row.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); take(Number(row.dataset.tokenId)); }
    if (e.key === 'Escape') { hideTip(); }
  });
  return row;
}

function take(tokenId) {
  if (!data || !data.force.enabled) { return; }
  const i = data.rows.findIndex((r) => r.token_id === tokenId);
  if (i < 0) { return; }
  const r = data.rows[i];
  hideTip();
  trigger('select', {index: i, value: r.token_id, token_id: r.token_id, token: r.token, step: data.step,
                     pending: data.pending});
}

function rowText(r) {
  let s = `${r.text}: model ${pct(r.raw)}, after the knobs ${pct(r.after)}`;
  if (r.cut) { s += `, ${r.cut}`; }
  if (r.chosen) { s += r.forced ? ', forced' : ', chosen'; }
  return s;
}

function showTip(tokenId, withButton) {
  if (!data) { return; }
  const r = data.rows.find((x) => x.token_id === tokenId);
  const row = rowEls.get(tokenId);
  if (!r || !row) { return; }
  tipFor = tokenId;
  tip.replaceChildren();
  const tok = el('div', 'dp-lc-tip-token', r.text);
  const id = el('div', '', `token id ${r.token_id} \u00b7 the model's #${r.rank + 1}`);
  const nums = el('div', '', `model ${pctFine(r.raw)} \u2192 after the knobs ${pctFine(r.after)}`);
  tip.append(tok, id, nums);
  if (r.cut) { tip.appendChild(el('div', '', r.cut)); }
  if (r.cumulative !== null && r.cumulative !== undefined) {
    tip.appendChild(el('div', '', `top-p's running sum ${pct(r.cumulative_start)} \u2192 ${pct(r.cumulative)} ` +
                                  `(p = ${data.top_p})`));
  }
  if (r.chosen) { tip.appendChild(el('div', '', r.forced ? 'forced by you' : 'the token this step took')); }
  if (data.force.enabled) {
    if (withButton) {
      const b = el('button', '', data.force.words);
      b.type = 'button';
      b.addEventListener('click', (e) => { e.stopPropagation(); take(tokenId); });
      tip.appendChild(b);
    } else {
      tip.appendChild(el('div', 'dp-lc-hint', 'click or Enter: ' + data.force.words.toLowerCase()));
    }
  }
  tip.hidden = false;
  // below the row, inside the chart; above it when the row is near the bottom
  const rb = row.getBoundingClientRect();
  const cb = root.getBoundingClientRect();
  const left = Math.max(0, Math.min(rb.left - cb.left + row.querySelector('.dp-lc-track').offsetLeft,
                                    root.clientWidth - tip.offsetWidth));
  let top = rb.bottom - cb.top + 2;
  if (top + tip.offsetHeight > root.clientHeight && rb.top - cb.top - tip.offsetHeight - 2 > 0) {
    top = rb.top - cb.top - tip.offsetHeight - 2;
  }
  tip.style.left = left + 'px';
  tip.style.top = top + 'px';
}
function hideTip() { tip.hidden = true; tipFor = null; }
document.addEventListener('pointerdown', (e) => { if (!root.contains(e.target)) { hideTip(); } });

// a label shortened in the middle to fit `chars` characters (its start and end stay visible)
function fit(label, chars) {
  const list = Array.from(label);
  if (list.length <= chars) { return label; }
  if (chars < 3) { return list.slice(0, Math.max(1, chars)).join(''); }
  const headN = Math.floor(chars / 2);
  const tailN = chars - 1 - headN;
  return list.slice(0, headN).join('') + '\u2026' + list.slice(list.length - tailN).join('');
}

let charWidth = 0;
function measureChar() {
  const probe = el('span', 'dp-lc-label', '0000000000');
  probe.style.cssText = 'position:absolute;visibility:hidden;';
  root.appendChild(probe);
  const w = probe.getBoundingClientRect().width / 10;
  probe.remove();
  return w || 9;
}

// the label column's width and each label's text, from the chart's width
function layoutLabels() {
  if (!data) { return; }
  charWidth = measureChar();
  const longest = Math.max(3, ...data.rows.map((r) => Array.from(r.label).length));
  const maxPx = Math.max(charWidth * 6, root.clientWidth * 0.4);
  const px = Math.min(longest * charWidth + 4, maxPx);
  root.style.setProperty('--dp-lc-lw', px + 'px');
  const chars = Math.floor((px - 4) / charWidth);
  for (const r of data.rows) {
    const row = rowEls.get(r.token_id);
    if (row) { row.querySelector('.dp-lc-label').textContent = fit(r.label, chars); }
  }
}

// each note beside its row's longer bar, or over it (on its own background) when the track has no room
// right of the bar: never past the track's edges
function placeNotes() {
  if (!data) { return; }
  for (const r of data.rows) {
    const row = rowEls.get(r.token_id);
    if (!row) { continue; }
    const track = row.querySelector('.dp-lc-track');
    const note = row.querySelector('.dp-lc-note');
    if (note.hidden) { continue; }
    const w = track.clientWidth;
    const nw = note.offsetWidth;
    const tipX = xOf(Math.max(r.raw, r.after)) * w;
    let x = tipX + 6;
    if (x + nw > w) { x = tipX - 6 - nw; }
    note.style.left = Math.max(0, Math.min(x, w - nw)) + 'px';
  }
}

function draw() {
  data = parse(props.value);
  hideTip();
  const has = !!(data && data.rows && data.rows.length);
  empty.hidden = has;
  for (const part of [title, plot, rest, legend, hint]) { part.hidden = !has; }
  if (!has) {
    table.replaceChildren();
    for (const row of rowEls.values()) { row.remove(); }
    rowEls.clear();
    if (gapEl) { gapEl.remove(); gapEl = null; }
    return;
  }
  const C = data.colors;
  head.textContent = data.title[0];
  sub.textContent = data.title[1];

  // the axis and its grid lines
  axis.replaceChildren();
  grid.replaceChildren();
  const ts = ticks();
  ts.forEach((p, i) => {
    const t = el('span', 'dp-lc-tick', tickText(p));
    if (i === 0) { t.classList.add('dp-lc-first'); }
    if (i === ts.length - 1) { t.classList.add('dp-lc-last'); }
    t.style.left = (100 * xOf(p)) + '%';
    axis.appendChild(t);
    const g = el('div', 'dp-lc-gridline');
    g.style.left = (100 * xOf(p)) + '%';
    grid.appendChild(g);
  });
  if (data.log_scale) { axis.setAttribute('title', 'probability, log scale'); } else { axis.removeAttribute('title'); }

  // the rows: first of each run a knob cut says so
  const regular = data.rows.filter((r) => !r.extra);
  let prevCut = null;
  data.rows.forEach((r, i) => {
    r.cutFirst = !!r.cut_by && (r.cut_by !== prevCut || i === regular.length);  // an extra row always says so
    prevCut = r.cut_by;
  });
  const seen = new Set();
  let y = data.top_p !== null ? BAND : 0;  // a band above the rows for top-p's label
  data.rows.forEach((r, i) => {
    if (r.extra && i === regular.length) {  // a gap: tokens between the last row shown and the chosen one
      if (!gapEl) {
        gapEl = el('div', 'dp-lc-gap');
        gapEl.appendChild(el('span', '', '\u22ee the chosen token ranks lower:'));
        rowsBox.appendChild(gapEl);
      }
      gapEl.style.transform = `translateY(${y}px)`;
      y += GAP;
    }
    let row = rowEls.get(r.token_id);
    if (!row) { row = makeRow(r); rowEls.set(r.token_id, row); row.style.transform = `translateY(${y}px)`;
                rowsBox.appendChild(row); }
    seen.add(r.token_id);
    row.dataset.index = String(i);
    row.classList.toggle('dp-lc-noforce', !data.force.enabled);
    row.classList.toggle('dp-lc-chosen', !!r.chosen);
    row.setAttribute('aria-label', rowText(r) + (data.force.enabled ? '. Enter: ' + data.force.words : ''));
    row.style.transform = `translateY(${y}px)`;
    requestAnimationFrame(() => { row.style.opacity = '1'; });
    row.style.backgroundColor = r.cut_by ? hexAlpha(C[r.cut_by], 0.16) : '';
    const label = row.querySelector('.dp-lc-label');
    label.style.fontWeight = r.chosen ? '700' : '';
    label.style.color = r.chosen ? markFor(r) : '';
    label.title = r.text;
    const outline = r.chosen ? `0 0 0 2px ${markFor(r)}` : 'none';
    const raw = row.querySelector('.dp-lc-raw');
    raw.style.width = (100 * xOf(r.raw)) + '%';
    raw.style.background = C.raw;
    raw.style.boxShadow = outline;
    const after = row.querySelector('.dp-lc-after');
    after.style.width = (100 * xOf(r.after)) + '%';
    after.style.background = C.after;
    after.style.boxShadow = outline;
    // top-p's staircase: this row spans from the sum above it to its own running sum
    const cum = row.querySelector('.dp-lc-cum');
    const up = row.querySelector('.dp-lc-up');
    const down = row.querySelector('.dp-lc-down');
    const dot = row.querySelector('.dp-lc-dot');
    const on = r.cumulative !== null && r.cumulative !== undefined && data.top_p !== null;
    for (const part of [cum, up, down, dot]) { part.hidden = !on; }
    if (on) {
      const a = xOf(r.cumulative_start), b = xOf(r.cumulative);
      cum.style.left = (100 * a) + '%';
      cum.style.width = (100 * Math.max(0, b - a)) + '%';
      up.style.left = (100 * a) + '%';
      down.style.left = (100 * b) + '%';
      dot.style.left = (100 * b) + '%';
      for (const part of [cum, up, down]) { part.style.borderColor = C.top_p; }
      dot.style.background = C.top_p;
      const next = data.rows[i + 1];
      up.hidden = i === 0 || (r.extra && i === regular.length);  // the line starts at 0 on the first row
      down.hidden = !next || !!next.extra !== !!r.extra || next.cumulative === null;
    }
    const note = row.querySelector('.dp-lc-note');
    const words = noteWords(r);
    note.hidden = !words;
    note.textContent = words;
    const color = r.chosen ? markFor(r) : (r.cut_by ? C[r.cut_by] : C.chosen);
    note.style.color = color;
    note.style.borderColor = color;
    y += ROW;
  });
  if (gapEl && !data.rows.some((r) => r.extra)) { gapEl.remove(); gapEl = null; }
  for (const [id, row] of rowEls) {  // rows no longer shown fade out
    if (!seen.has(id)) {
      rowEls.delete(id);
      row.style.opacity = '0';
      row.style.pointerEvents = 'none';
      row.setAttribute('aria-hidden', 'true');  // a row fading out is gone for the keyboard and screen readers
      row.inert = true;
      setTimeout(() => row.remove(), 400);
    }
  }
  rowsBox.style.height = y + 'px';

  // top-p's threshold: a dashed line over every row
  let pline = rowsBox.querySelector('.dp-lc-pline');
  let plabel = rowsBox.querySelector('.dp-lc-plabel');
  if (data.top_p !== null) {
    if (!pline) { pline = el('div', 'dp-lc-pline'); plabel = el('span', 'dp-lc-plabel'); grid.after(pline, plabel); }
  } else if (pline) { pline.remove(); plabel.remove(); pline = null; }

  // what the rows leave out
  rest.textContent = `All other tokens: ${pct(data.rest.raw)} of the model's probability, ` +
                     `${pct(data.rest.after)} after the knobs.`;

  // the legend, worded for the strategy in use, and what the stand-ins mean
  legend.replaceChildren();
  for (const item of data.legend) {
    const li = el('li');
    li.dataset.key = item.key;
    const sw = el('span', 'dp-lc-swatch');
    if (item.mark === 'bar') { sw.style.background = item.color; }
    if (item.mark === 'shade') { sw.style.background = hexAlpha(item.color, 0.3); sw.style.border = `1px solid ${item.color}`; }
    if (item.mark === 'line') { sw.style.height = '0'; sw.style.borderTop = `3px solid ${item.color}`; }
    if (item.mark === 'outline') { sw.style.border = `2px solid ${item.color}`; }
    li.append(sw, el('span', '', item.label));
    legend.appendChild(li);
  }
  const li = el('li', 'dp-lc-stand-ins');
  li.textContent = data.stand_ins.map((s) => `${s.mark} = ${s.means}`).join(' \u00b7 ');
  legend.appendChild(li);
  hint.textContent = data.force.enabled
    ? `Hover or tap a row for its numbers. Click a row (or Enter) to take that token: ${data.force.words}.`
    : 'Hover or tap a row for its numbers.';

  // the text alternative: the same numbers as a table, for screen readers
  table.replaceChildren();
  const cap = el('caption', '', `${data.title[0]}. ${data.title[1]}.`);
  const thead = el('thead');
  const hr = el('tr');
  for (const h of ['token', 'token id', 'model', 'after the knobs', 'cut', 'top-p running sum', 'chosen']) {
    const th = el('th', '', h);
    th.scope = 'col';
    hr.appendChild(th);
  }
  thead.appendChild(hr);
  const tbody = el('tbody');
  for (const r of data.rows) {
    const tr = el('tr');
    tr.dataset.tokenId = String(r.token_id);
    const th = el('th', '', r.text);
    th.scope = 'row';
    tr.appendChild(th);
    const cells = [String(r.token_id), pct(r.raw), pct(r.after), r.cut || '',
                   (r.cumulative === null || r.cumulative === undefined) ? '' : pct(r.cumulative),
                   r.chosen ? (r.forced ? 'forced' : 'chosen') : ''];
    for (const c of cells) { tr.appendChild(el('td', '', c)); }
    tbody.appendChild(tr);
  }
  const tr = el('tr');
  tr.dataset.rest = 'true';
  const th = el('th', '', 'all other tokens');
  th.scope = 'row';
  tr.appendChild(th);
  for (const c of ['', pct(data.rest.raw), pct(data.rest.after), '', '', '']) { tr.appendChild(el('td', '', c)); }
  tbody.appendChild(tr);
  table.append(cap, thead, tbody);

  layout();
}

function layout() {
  if (!data || !data.rows || !data.rows.length) { return; }
  layoutLabels();
  const pline = rowsBox.querySelector('.dp-lc-pline');
  if (pline && data.top_p !== null) {
    // the grid's box is the tracks' x range: place the line in it
    const gx = grid.offsetLeft, gw = grid.clientWidth;
    const x = gx + xOf(data.top_p) * gw;
    pline.style.left = (x - 1) + 'px';
    pline.style.borderColor = data.colors.top_p;
    const plabel = rowsBox.querySelector('.dp-lc-plabel');
    plabel.textContent = `top-p = ${data.top_p}`;
    plabel.style.color = data.colors.top_p;
    plabel.style.left = Math.max(gx, x - plabel.offsetWidth - 4) + 'px';
  }
  placeNotes();
}

function hexAlpha(hex, a) {
  const h = hex.replace('#', '');
  const n = parseInt(h.length === 3 ? h.split('').map((c) => c + c).join('') : h, 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

new ResizeObserver(() => layout()).observe(root);
watch('value', draw);
draw();
