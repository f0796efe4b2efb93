-- craft.study.page: the study packet's one HTML file: inline CSS, inline JavaScript, the trials
-- as a JSON block with every image a PNG data URI. It opens from a file:// URL offline in any
-- current browser, keeps the reader's progress in localStorage, and at the end offers the
-- ratings as a JSON file to download (and as text to copy).
--
-- Nothing here may name the program or a method: the page is scanned for that (craft.study.scan)
-- before it is written. The test hook is window.__readerStudy (docs/reader_study.md).
local io_ = require 'craft.io'
local hash = require 'craft.study.hash'

local M = {}

local CSS = [[
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#f3f4f6}
main{max-width:1240px;margin:0 auto;padding:20px 26px 40px;background:#fff;min-height:100vh}
h1{font-size:23px;margin:0 0 8px}h2{font-size:18px;margin:4px 0 6px}
p{margin:6px 0}.meta{color:#666;font-size:13px}.warn{background:#fff4e5;border:1px solid #f0b35b;padding:6px 10px;border-radius:4px}
button{font:inherit;padding:6px 14px;border-radius:5px;border:1px solid #8a94a6;background:#fff;cursor:pointer}
button.primary{background:#2458a6;color:#fff;border-color:#2458a6}button:disabled{opacity:.45;cursor:default}
input[type=text]{font:inherit;padding:6px 8px;width:min(360px,90%);border:1px solid #8a94a6;border-radius:5px}
.instructions{max-width:760px}.instructions p{margin:10px 0}
.bar{display:flex;align-items:center;gap:14px;flex-wrap:wrap;margin-bottom:8px}
progress{width:220px;height:10px}
.target{background:#f2f6fc;border-left:4px solid #2458a6;padding:8px 14px;margin:8px 0 12px}
.target .items{margin:4px 0 0 18px;padding:0;color:#444;font-size:13px}
.help{color:#555;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:14px;margin:12px 0}
.card{border:1px solid #d6dae1;border-radius:8px;padding:8px;width:222px;background:#fff}
.card.ranked{border-color:#2458a6;box-shadow:0 0 0 2px #2458a6 inset}
.pick{position:relative;display:block;padding:0;border:0;background:#000;width:204px;height:204px;border-radius:4px;overflow:hidden}
.pick img{width:100%;height:100%;object-fit:contain;display:block}
.pixelated .pick img,.pixelated .zoom img{image-rendering:pixelated}
.badge{position:absolute;top:6px;left:6px;min-width:30px;height:30px;border-radius:15px;background:#2458a6;color:#fff;font-weight:700;font-size:17px;line-height:30px;text-align:center;padding:0 6px}
.badge:empty{display:none}
.label{display:flex;justify-content:space-between;align-items:center;margin:6px 0 2px;font-weight:600}
.label button{padding:1px 8px;font-size:12px}
.ticks{font-size:12px;color:#333}.ticks label{display:flex;gap:5px;align-items:flex-start;margin:3px 0}
.ticks .flag{border-top:1px solid #e5e7eb;padding-top:4px;margin-top:5px;color:#8a2a1f}
.strip{display:flex;align-items:center;gap:8px;flex-wrap:wrap;min-height:58px;border:1px dashed #b8bfcc;border-radius:6px;padding:6px 10px;margin:6px 0 12px}
.strip .slot{display:flex;flex-direction:column;align-items:center;font-size:12px;cursor:grab}
.strip .slot img{width:44px;height:44px;object-fit:contain;background:#000;border-radius:3px}
.strip .slot.over{outline:2px solid #2458a6}
nav{display:flex;gap:10px;flex-wrap:wrap}
textarea{width:100%;height:180px;font:12px/1.3 ui-monospace,monospace}
.zoom{position:fixed;inset:0;background:rgba(0,0,0,.88);display:flex;align-items:center;justify-content:center;z-index:9}
.zoom img{max-width:92vw;max-height:92vh;width:92vmin;height:92vmin;object-fit:contain}
]]

-- The application. D is the packet's data; H the hash twin (craft.study.hash.JS).
local APP = [==[
'use strict';
(() => {
  const D = JSON.parse(document.getElementById('study-data').textContent);
  const KEY = 'reader-study:' + D.packet;
  const CHECKSUM = H.trialsChecksum(D.packet, D.trials);
  const byId = {};
  for (const t of D.trials) byId[t.id] = t;
  const app = document.getElementById('app');
  if (D.pixelated) document.body.classList.add('pixelated');

  let store = null;
  try { localStorage.setItem(KEY + ':probe', '1'); localStorage.removeItem(KEY + ':probe'); store = localStorage; } catch (e) { store = null; }
  const fresh = () => ({ rater: '', order: [], pos: 0, answers: {}, started: null, finished: null, view: 'intro' });
  function load() {
    if (!store) return fresh();
    try {
      const s = JSON.parse(store.getItem(KEY));
      if (s && typeof s === 'object' && Array.isArray(s.order) && s.answers) return s;
    } catch (e) { /* a damaged entry: start afresh */ }
    return fresh();
  }
  let S = load();
  let saveFailed = false;
  function save() {
    if (!store) return;
    try { store.setItem(KEY, JSON.stringify(S)); } catch (e) { saveFailed = true; }
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      if (k === 'class') e.className = attrs[k];
      else if (k === 'text') e.textContent = attrs[k];
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== false && attrs[k] != null) e.setAttribute(k, attrs[k] === true ? '' : attrs[k]);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  const now = () => new Date().toISOString();
  const complete = id => { const a = S.answers[id]; return !!a && a.ranking.length === byId[id].images.length; };
  const doneCount = () => S.order.filter(complete).length;

  // time on the current trial: counted while the page is visible
  let shownAt = null;
  function clockStop() {
    if (shownAt === null || S.view !== 'trial') return;
    const a = S.answers[S.order[S.pos]];
    if (a) a.ms = Math.round(a.ms + performance.now() - shownAt);
    shownAt = null;
    save();
  }
  function clockStart() { if (S.view === 'trial') shownAt = performance.now(); }
  document.addEventListener('visibilitychange', () => { if (document.hidden) clockStop(); else clockStart(); });
  window.addEventListener('pagehide', clockStop);

  function normName(s) { return String(s || '').normalize('NFC').replace(/\s+/g, ' ').trim().slice(0, 100); }
  function begin(name) {
    S = fresh();
    S.rater = name;
    S.order = H.shuffle(D.trials.map(t => t.id), H.sessionSeed(D.packet, name));
    S.started = now();
    S.view = 'trial';
    save();
    render();
  }

  function intro() {
    const box = el('div', { class: 'instructions' });
    for (const p of D.instructions) box.append(el('p', { text: p }));
    const parts = [el('h1', { text: D.title }), el('p', { class: 'meta', text: D.trials.length + ' trials · study packet ' + D.packet }), box];
    if (!store) parts.push(el('p', { class: 'warn', text: 'This browser does not let the page keep your progress: please finish in one sitting, or open the file in another browser.' }));
    if (S.rater && S.order.length) {
      const again = el('button', { id: 'restart', onclick: () => {
        if (again.dataset.sure) { if (store) store.removeItem(KEY); S = fresh(); render(); return; }
        again.dataset.sure = '1';
        again.textContent = 'Discard ' + S.rater + '\u2019s answers and start again';
      } }, 'Start as a different reader');
      parts.push(el('p', { text: 'Welcome back, ' + S.rater + ': ' + doneCount() + ' of ' + D.trials.length + ' trials done.' }),
        el('nav', {}, el('button', { id: 'continue', class: 'primary', onclick: () => { S.view = doneCount() === S.order.length ? 'done' : 'trial'; save(); render(); } }, 'Continue'), again));
    } else {
      const input = el('input', { type: 'text', id: 'rater', autocomplete: 'name', placeholder: 'e.g. Dr A. Smith' });
      const start = el('button', { id: 'start', class: 'primary', disabled: true, onclick: () => { const n = normName(input.value); if (n) begin(n); } }, 'Start');
      input.addEventListener('input', () => { start.disabled = !normName(input.value); });
      input.addEventListener('keydown', e => { if (e.key === 'Enter') start.click(); });
      parts.push(el('p', {}, el('label', { for: 'rater', text: 'Your name (as the investigator should record it): ' })), el('p', {}, input, ' ', start));
    }
    return parts;
  }

  function answer(id) {
    let a = S.answers[id];
    if (!a) {
      a = S.answers[id] = { shown: H.shuffle(byId[id].images.map(i => i.id), H.orderSeed(D.packet, S.rater, id)),
        ranking: [], ticks: {}, flags: [], ms: 0, visits: 0, first: now(), last: null };
    }
    return a;
  }

  function zoom(src) {
    const z = el('div', { class: 'zoom', onclick: () => z.remove() }, el('img', { src, alt: '' }));
    document.body.append(z);
  }

  function trial() {
    const id = S.order[S.pos];
    const t = byId[id], cls = D.classes[t.c], a = answer(id);
    a.visits += 1;
    const src = {};
    for (const im of t.images) src[im.id] = im.src;
    const cards = el('div', { class: 'cards' });
    const strip = el('div', { class: 'strip', id: 'strip' });
    const next = el('button', { id: 'next', class: 'primary', onclick: () => go(1) }, S.pos + 1 === S.order.length ? 'Finish' : 'Next');
    const letters = {};
    a.shown.forEach((im, k) => { letters[im] = String.fromCharCode(65 + k); });
    function update() {
      for (const card of cards.children) {
        const r = a.ranking.indexOf(card.dataset.id);
        card.querySelector('.badge').textContent = r < 0 ? '' : String(r + 1);
        card.classList.toggle('ranked', r >= 0);
      }
      strip.replaceChildren(el('span', { class: 'help', text: a.ranking.length ? 'Your ranking (drag to reorder):' : 'Your ranking: click the images, most plausible first.' }));
      a.ranking.forEach((im, k) => {
        const slot = el('div', { class: 'slot', draggable: 'true', 'data-id': im }, el('img', { src: src[im], alt: '' }), String(k + 1) + ' \u00b7 ' + letters[im]);
        slot.addEventListener('dragstart', e => { e.dataTransfer.setData('text/plain', im); });
        slot.addEventListener('dragover', e => { e.preventDefault(); slot.classList.add('over'); });
        slot.addEventListener('dragleave', () => slot.classList.remove('over'));
        slot.addEventListener('drop', e => {
          e.preventDefault();
          const from = e.dataTransfer.getData('text/plain');
          if (from && from !== im && a.ranking.includes(from)) {
            a.ranking.splice(a.ranking.indexOf(from), 1);
            a.ranking.splice(k, 0, from);   // the dragged image takes the target's place
            changed();
          }
        });
        strip.append(slot);
      });
      next.disabled = a.ranking.length !== t.images.length;
    }
    function changed() { a.last = now(); save(); update(); }
    for (const im of a.shown) {
      const ticks = el('div', { class: 'ticks' });
      cls.items.forEach((item, k) => {
        const box = el('input', { type: 'checkbox', class: 'tick', 'data-item': k, checked: (a.ticks[im] || []).includes(k) });
        box.addEventListener('change', () => {
          const list = (a.ticks[im] = (a.ticks[im] || []).filter(x => x !== k));
          if (box.checked) list.push(k);
          changed();
        });
        ticks.append(el('label', {}, box, el('span', { text: item })));
      });
      const flag = el('input', { type: 'checkbox', class: 'flagbox', checked: a.flags.includes(im) });
      flag.addEventListener('change', () => { a.flags = a.flags.filter(x => x !== im); if (flag.checked) a.flags.push(im); changed(); });
      ticks.append(el('label', { class: 'flag' }, flag, el('span', { text: 'not diagnostic (cannot be read)' })));
      const pick = el('button', { class: 'pick', title: 'click to rank', onclick: () => {
        const r = a.ranking.indexOf(im);
        if (r >= 0) a.ranking.splice(r, 1); else a.ranking.push(im);
        changed();
      } }, el('img', { src: src[im], alt: 'image ' + letters[im] }), el('span', { class: 'badge' }));
      cards.append(el('div', { class: 'card', 'data-id': im }, pick,
        el('div', { class: 'label' }, 'Image ' + letters[im], el('button', { title: 'enlarge', onclick: () => zoom(src[im]) }, 'enlarge')), ticks));
    }
    update();
    const items = el('ul', { class: 'items' });
    for (const it of cls.items) items.append(el('li', { text: it }));
    return [
      el('div', { class: 'bar' }, el('strong', { text: 'Trial ' + (S.pos + 1) + ' of ' + S.order.length }),
        el('progress', { max: S.order.length, value: doneCount() }), el('span', { class: 'meta', text: S.rater })),
      saveFailed ? el('p', { class: 'warn', text: 'Your progress could not be saved in this browser; please finish in one sitting.' }) : null,
      el('div', { class: 'target' }, el('h2', { text: 'Target: ' + cls.name }), el('p', { text: cls.description }),
        cls.items.length ? el('div', { class: 'meta', text: 'Checklist (tick under each image what you can see):' }) : null, cls.items.length ? items : null),
      el('p', { class: 'help', text: 'Rank the images by clinical plausibility for this target: click the most plausible first, then the next, down to the least plausible. Click a ranked image again to take back its rank.' }),
      cards, strip,
      el('nav', {}, el('button', { id: 'back', disabled: S.pos === 0, onclick: () => go(-1) }, 'Back'),
        el('button', { id: 'clear', onclick: () => { a.ranking = []; changed(); } }, 'Clear ranking'), next),
    ];
  }

  function go(step) {
    clockStop();
    const id = S.order[S.pos];
    if (step > 0 && !complete(id)) return;
    S.pos += step;
    if (S.pos >= S.order.length) {
      S.pos = S.order.length - 1;
      const open = S.order.findIndex(x => !complete(x));
      if (open >= 0) S.pos = open; else { S.view = 'done'; if (!S.finished) S.finished = now(); }
    }
    if (S.pos < 0) S.pos = 0;
    save();
    render();
  }

  function ratings() {
    const r = { format: 'reader-study-ratings', version: 1, packet: D.packet, trials_checksum: CHECKSUM,
      trial_count: D.trials.length, rater: S.rater, started: S.started, finished: S.finished,
      user_agent: navigator.userAgent, trials: [] };
    for (const id of S.order) {
      if (!complete(id)) continue;
      const a = S.answers[id], ticks = {};
      for (const im of Object.keys(a.ticks)) if (a.ticks[im].length) ticks[im] = a.ticks[im].slice().sort((x, y) => x - y);
      r.trials.push({ trial: id, shown: a.shown.slice(), ranking: a.ranking.slice(), ticks, flags: a.flags.slice(),
        ms: Math.round(a.ms), visits: a.visits, answered: a.last });
    }
    r.checksum = H.ratingsChecksum(r);
    return JSON.stringify(r, null, 1);
  }
  const fileName = () => 'ratings-' + D.packet + '-' + (S.rater.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'reader') + '.json';
  function download() {
    const url = URL.createObjectURL(new Blob([ratings()], { type: 'application/json' }));
    const a = el('a', { href: url, download: fileName() });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 4000);
  }

  function done() {
    const text = el('textarea', { id: 'ratings-text', readonly: true });
    text.value = ratings();
    return [el('h1', { text: 'Thank you, ' + S.rater }),
      el('p', { text: 'All ' + S.order.length + ' trials are done. Download your ratings file and send it to the investigator (by e-mail, for example).' }),
      el('nav', {}, el('button', { id: 'download', class: 'primary', onclick: download }, 'Download ratings (' + fileName() + ')'),
        el('button', { id: 'review', onclick: () => { S.view = 'trial'; S.pos = 0; save(); render(); } }, 'Review my answers')),
      el('p', { class: 'meta', text: 'If the download does not work, copy the text below into an e-mail instead.' }), text];
  }

  function render() {
    const parts = S.view === 'trial' ? trial() : S.view === 'done' ? done() : intro();
    app.replaceChildren(...parts.filter(x => x != null));
    window.scrollTo(0, 0);
    clockStart();
  }

  // Test hook for scripted sessions (headless browsers): every action goes through the page's
  // own controls (element clicks), so a script exercises what a reader uses.
  const card = id => app.querySelector('.card[data-id="' + id + '"]');
  window.__readerStudy = {
    version: 1,
    view: () => S.view,
    current: () => {
      if (S.view !== 'trial') return null;
      const id = S.order[S.pos], t = byId[id], a = S.answers[id];
      return { id, position: S.pos + 1, count: S.order.length, done: doneCount(), class: D.classes[t.c].name,
        description: D.classes[t.c].description, items: D.classes[t.c].items.slice(), images: a.shown.slice(), ranking: a.ranking.slice() };
    },
    start: name => {
      if (S.view === 'intro' && S.rater && S.rater === normName(name)) { document.getElementById('continue').click(); return; }
      if (S.view === 'intro' && S.rater) { if (store) store.removeItem(KEY); S = fresh(); render(); }
      const input = document.getElementById('rater');
      input.value = name;
      input.dispatchEvent(new Event('input'));
      document.getElementById('start').click();
    },
    click: id => card(id).querySelector('.pick').click(),
    rank: ids => { document.getElementById('clear').click(); for (const id of ids) card(id).querySelector('.pick').click(); },
    tick: (id, item) => card(id).querySelector('.tick[data-item="' + item + '"]').click(),
    flag: id => card(id).querySelector('.flagbox').click(),
    next: () => document.getElementById('next').click(),
    back: () => document.getElementById('back').click(),
    ratings,
    download: () => document.getElementById('download').click(),
    reset: () => { if (store) store.removeItem(KEY); S = fresh(); render(); },
  };
  render();
})();
]==]

local function script_json(v)
  -- inside <script type="application/json">: no "</script" may appear; \u003c is valid JSON
  return (io_.encode_json(v):gsub('<', '\\u003c'))
end
local function esc(s)
  return (tostring(s):gsub('[&<>"]', { ['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;', ['"'] = '&quot;' }))
end

-- render(data) -> the HTML text. data = {packet, title, instructions = {paragraphs},
-- classes = {{name, description, items = {texts}}}, trials = {{id, c (0-based), images =
-- {{id, src}}}}, pixelated = bool}
function M.render(data)
  return table.concat({
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>' .. esc(data.title) .. '</title>',
    '<style>' .. CSS .. '</style></head><body>',
    '<main id="app"><noscript><p>This study page needs JavaScript. Please open it in a current browser (Firefox, Chrome, Edge or Safari) with JavaScript enabled.</p></noscript></main>',
    '<script type="application/json" id="study-data">' .. script_json(data) .. '</script>',
    '<script>\n' .. hash.JS .. APP .. '</script>',
    '</body></html>\n',
  }, '\n')
end

return M
