// tests/study/driver.js: completes a study packet in a headless browser through the page's
// test hook (window.__readerStudy), following window.__PLAN (written by drive_page.lua):
//   { rater, stop_after, trials: { T01: { ranking: [ids], ticks: { id: [items] }, flags: [ids] } } }
// After stop_after trials it reloads the page once (sessionStorage marks the second load) to
// check that progress survives a reload. Results go into <pre id=...> elements, URI-encoded,
// for `chromium --dump-dom`: "download" (the file the Download button produces), "hook" (the
// hook's ratings text), "log" (JSON: what happened) and "driver-error".
(async () => {
  const out = (k, v) => { const p = document.createElement('pre'); p.id = k; p.textContent = encodeURIComponent(v); document.body.append(p); };
  const log = JSON.parse(sessionStorage.getItem('driver-log') || '{"loads":[]}');
  try {
    const S = window.__readerStudy, P = window.__PLAN;
    const second = sessionStorage.getItem('driver-reloaded') === '1';
    log.loads.push({ view: S.view(), done: S.current() ? S.current().done : null });
    if (S.view() === 'intro') S.start(P.rater);
    if (second) log.resumed_at = S.current() && S.current().position;
    let n = 0;
    while (S.view() === 'trial') {
      const c = S.current();
      const plan = P.trials[c.id];
      if (!plan) throw new Error('no plan for trial ' + c.id);
      if (c.images.slice().sort().join() !== plan.ranking.slice().sort().join()) throw new Error('trial ' + c.id + ' shows other images');
      S.rank(plan.ranking);
      for (const id of Object.keys(plan.ticks)) for (const k of plan.ticks[id]) S.tick(id, k);
      for (const id of plan.flags) S.flag(id);
      const after = S.current();
      if (after.ranking.join() !== plan.ranking.join()) throw new Error('trial ' + c.id + ': the clicks gave ranking ' + after.ranking.join());
      S.next();
      n += 1;
      if (!second && P.stop_after && n === P.stop_after) {
        log.before_reload = n;
        sessionStorage.setItem('driver-log', JSON.stringify(log));
        sessionStorage.setItem('driver-reloaded', '1');
        // a reader's reload comes well after the click; give Chromium's storage its moment (an
        // immediate reload on a loaded machine once came back without localStorage's last write)
        await new Promise(r => setTimeout(r, 1000));
        location.reload();
        return;
      }
    }
    log.final_view = S.view();
    let blob = null;
    const orig = URL.createObjectURL;
    URL.createObjectURL = b => { blob = b; return orig.call(URL, b); };
    S.download();
    out('download', blob ? await blob.text() : '');
    out('hook', S.ratings());
  } catch (e) {
    out('driver-error', String((e && e.stack) || e));
  }
  out('log', JSON.stringify(log));
})();
