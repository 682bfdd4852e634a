/*
 * reconciler dashboard: plain JavaScript, no library, no build step.
 *
 * It reads the service's own API (docs/API.md) and draws with DOM and SVG
 * elements. Every value from the API (mirror names, ids, error messages) is
 * set as text (textContent, createTextNode, setAttribute): nothing is ever
 * parsed as HTML, and the page's Content-Security-Policy forbids inline
 * script besides. The API token the user types is kept in a variable (and
 * in sessionStorage only if "keep for this tab" is ticked), sent as a
 * bearer token, and never written into the page.
 */
'use strict';

(function () {
  /* Drift ids link to GET /api/mirrors/{m}/docs/{id}/diff once that route
   * exists: 'auto' looks for it in GET /'s list of endpoints; true or false
   * forces it. */
  const DIFF_LINKS = 'auto';
  const DIFF_ROUTE = '/api/mirrors/{m}/docs/{doc}/diff'; /* as GET / lists it */
  const POLL_MS = 3000;
  const POLL_ACTIVE_MS = 1000;
  const PAGE = 50;
  const TOKEN_KEY = 'reconciler.token';
  const SERIES = [
    { key: 'missingCount', name: 'missing', cls: 's-missing', found: true },
    { key: 'staleCount', name: 'stale', cls: 's-stale', found: true },
    { key: 'orphanCount', name: 'orphan', cls: 's-orphan', found: true },
    { key: 'duplicateCount', name: 'duplicate', cls: 's-duplicate', found: true, optional: true },
    { key: 'conflictCount', name: 'conflict', cls: 's-conflict', found: true, optional: true },
    { key: 'repairedCount', name: 'repaired (indexed)', cls: 's-repaired' },
    { key: 'deletedCount', name: 'repaired (deleted)', cls: 's-deleted' },
    { key: 'failedCount', name: 'failed', cls: 's-failed', optional: true },
  ];
  const SVG_NS = 'http://www.w3.org/2000/svg';

  let token = null;
  try {
    token = window.sessionStorage.getItem(TOKEN_KEY);
  } catch (e) {
    token = null;
  }

  const state = {
    mirrors: [],
    selected: null,    /* name of the mirror shown (from #mirror=NAME, else the first) */
    chartMirror: null, /* whose runs chartRuns holds */
    signature: '',     /* what changed since the last poll */
    chartRuns: [],     /* the selected mirror's finished runs, oldest first */
    history: [],       /* the loaded history page(s) */
    nextBefore: null,
    reportId: null,
    reportStatus: null,
    diffLinks: DIFF_LINKS === true,
    timer: null,
    mirrorsKey: '',
    pollSeq: 0,
    readBlocked: false,
    fullArmed: null,
    orphanPolicy: new Map(), /* run id -> its RECONCILE_ORPHANS (a finished run's never changes) */
  };

  const $ = (id) => document.getElementById(id);

  /* ---- DOM helpers: text only ----------------------------------------- */

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'onclick') e.addEventListener('click', v);
      else e.setAttribute(k, String(v));
    }
  }

  function append(e, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
    return e;
  }

  /* ---- formatting ------------------------------------------------------ */

  function num(v) {
    return v === null || v === undefined ? '—' : Number(v).toLocaleString('en-US');
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function when(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function span(ms) {
    if (ms === null || ms === undefined || !isFinite(ms) || ms < 0) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' m ' + Math.round(s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' m';
  }

  function duration(run) {
    if (!run.startedAt || !run.finishedAt) return null;
    return Date.parse(run.finishedAt) - Date.parse(run.startedAt);
  }

  function kindName(k) {
    return k === 'dry_run' ? 'dry run' : String(k);
  }

  /* In sync, drift or unknown, judged from a mirror's newest run. */
  /* Whether the mirror is in sync is judged from a pass over the whole
   * collection (check, dry run, full re-index, a live sync's catchup): a targeted run (kind ids)
   * or a sample looked at a few ids and says nothing about the rest. */
  function isPass(run) {
    return run && run.kind !== 'ids' && run.kind !== 'sample';
  }

  /* The newest pass of a mirror: from the selected mirror's runs when at
   * hand, else its last run when that is a pass (undefined: not known). */
  function newestPass(m) {
    if (m.name === state.chartMirror && state.chartRuns.length) {
      for (let i = state.chartRuns.length - 1; i >= 0; i--)
        if (isPass(state.chartRuns[i])) return state.chartRuns[i];
      return null;
    }
    return isPass(m.lastRun) ? m.lastRun : undefined;
  }

  function mirrorSync(m) {
    if (m.currentRun) return { cls: 'running', text: 'running' };
    if (m.lastRun && m.lastRun.status === 'running') return { cls: 'running', text: 'running' };
    const pass = newestPass(m);
    if (pass === undefined) return { cls: '', text: 'last run targeted: open the mirror' };
    if (pass === null) return { cls: '', text: 'no full pass yet' };
    return syncOf(pass);
  }

  function syncOf(run) {
    if (!run) return { cls: '', text: 'no run yet' };
    if (run.status === 'running') return { cls: 'running', text: 'running' };
    if (run.status === 'cancelled') return { cls: '', text: 'last run cancelled' };
    if (run.status !== 'completed') return { cls: 'bad', text: 'last run ' + run.status };
    const n = (k) => Number(run[k] || 0);
    const found = n('missingCount') + n('staleCount') + n('orphanCount');
    if (n('failedCount') > 0) return { cls: 'drift', text: 'drift: ' + n('failedCount') + ' failed' };
    const repaired = run.kind !== 'dry_run' && n('repairedCount') >= n('missingCount') + n('staleCount');
    if (found > 0 && !(repaired && n('deletedCount') >= n('orphanCount'))) {
      /* the orphans are all that is left, and the setting kept them: say so */
      const kept = keptOrphans(run);
      if (repaired && kept) return { cls: 'drift', text: keptText(kept) };
      return { cls: 'drift', text: 'drift: ' + num(found) };
    }
    return verified(run) ? { cls: 'ok', text: 'in sync' } : { cls: '', text: 're-indexed, not verified' };
  }

  /* A full re-index rewrites every document but does not look for drift
   * (orphans are not sought): it proves nothing, unless the API says the
   * run verified the index (a run's verified or inSync, when it has them). */
  function verified(run) {
    return run.kind !== 'full' || run.verified === true || run.inSync === true;
  }

  /* The orphans a finished run found and left in the index because
   * RECONCILE_ORPHANS said report: {count, policy}, or null (none kept that
   * way, or the policy not known yet). From the API's own fields when it
   * has them (orphansKept, orphanPolicy), else from the run's configuration
   * snapshot (the report's config; only that one setting is read). */
  function keptOrphans(run) {
    if (!run || run.kind === 'dry_run') return null;
    let policy = typeof run.orphanPolicy === 'string' ? run.orphanPolicy : null;
    if (!policy && run.config && typeof run.config.RECONCILE_ORPHANS === 'string') policy = run.config.RECONCILE_ORPHANS;
    if (!policy && state.orphanPolicy.has(run.id)) policy = state.orphanPolicy.get(run.id);
    policy = policy ? String(policy).toLowerCase() : null;
    let count = null;
    if (typeof run.orphansKept === 'number') {
      /* the journal's count of orphans a check kept (RECONCILE_ORPHANS=report) */
      count = run.orphansKept;
      policy = policy || 'report';
    }
    else if (policy === 'report') count = Number(run.orphanCount || 0);
    if (!count || count <= 0) return null;
    return { count, policy };
  }

  function keptText(kept) {
    return num(kept.count) + (kept.count === 1 ? ' orphan' : ' orphans') + ' not deleted' +
      (kept.policy ? ': RECONCILE_ORPHANS=' + kept.policy : '');
  }

  /* Whether the page should read a run's report for its orphan policy: a
   * finished pass that kept orphans and whose policy is not known. */
  function needsPolicy(run) {
    return !!run && run.status === 'completed' && run.kind !== 'dry_run' && Number(run.orphanCount || 0) > 0 &&
      Number(run.deletedCount || 0) < Number(run.orphanCount || 0) && typeof run.orphanPolicy !== 'string' &&
      typeof run.orphansKept !== 'number' && !state.orphanPolicy.has(run.id);
  }

  async function loadPolicies() {
    const runs = state.mirrors.map((m) => newestPass(m)).filter(needsPolicy);
    for (const run of runs) {
      try {
        const { data } = await api('GET', '/api/reconciliation/runs/' + encodeURIComponent(run.id));
        const cfg = (data.run && data.run.config) || {};
        state.orphanPolicy.set(run.id, typeof cfg.RECONCILE_ORPHANS === 'string' ? cfg.RECONCILE_ORPHANS : null);
      } catch (e) {
        state.orphanPolicy.set(run.id, null); /* not known: "drift: N" as before */
      }
    }
    return runs.length > 0;
  }

  /* ---- the API ------------------------------------------------------- */

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'the service does not answer');
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      const why = data && typeof data.error === 'string' ? data.error : resp.statusText;
      throw new ApiError(resp.status, why);
    }
    return { status: resp.status, data: data || {} };
  }

  function mirrorPath(name) {
    return '/api/mirrors/' + encodeURIComponent(name);
  }

  /* ---- messages -------------------------------------------------------- */

  function message(kind, text) {
    const box = $('message');
    box.className = kind;
    $('message-text').textContent = text;
    box.hidden = false;
  }

  function apiMessage(what, e) {
    if (e.status === 401)
      message('error', what + ': 401 ' + e.message +
        (token ? ' (the token entered is not accepted)' : ' (enter the API token above)'));
    else if (e.status)
      message('error', what + ': ' + e.status + ' ' + e.message);
    else
      message('error', what + ': ' + e.message);
  }

  /* ---- the token ------------------------------------------------------- */

  function showTokenState() {
    $('token-state').textContent = token ? 'token set' : 'no token';
    $('token-forget').disabled = !token;
  }

  function useToken(ev) {
    ev.preventDefault();
    const input = $('token-input');
    const v = input.value.trim();
    input.value = '';
    /* a header carries Latin-1 only: fetch would throw on every request,
     * which read as "the service does not answer" */
    if (/[^\x20-\x7e]/.test(v)) {
      message('error', 'This token holds characters a browser cannot send in a header ' +
        '(printable ASCII only): set API_TOKEN to such a token.');
      return;
    }
    token = v || null;
    try {
      if (token && $('token-keep').checked) window.sessionStorage.setItem(TOKEN_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage refused: memory only */ }
    showTokenState();
    state.readBlocked = false;
    state.signature = '';
    $('message').hidden = true;
    detectDiffRoute().then(poll);
  }

  function forgetToken() {
    token = null;
    try {
      window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* nothing kept */ }
    showTokenState();
  }

  /* ---- mirrors --------------------------------------------------------- */

  function selectedMirror() {
    return state.mirrors.find((m) => m.name === state.selected) || null;
  }

  /* Each mirror's own link: #mirror=NAME opens the page on it, survives a
   * reload, and back and forward walk the mirrors shown. */
  function mirrorHref(name) {
    return '#mirror=' + encodeURIComponent(name);
  }

  function hashMirror() {
    const h = window.location.hash.replace(/^#/, '');
    if (!h) return null;
    const name = new URLSearchParams(h).get('mirror');
    return name === null || name === '' ? null : name;
  }

  /* The mirror to show once the mirrors are known: the hash's, else the
   * first. A name the service does not have says so and shows the first. */
  function settleSelected() {
    if (selectedMirror() || state.mirrors.length === 0) return;
    const first = state.mirrors[0].name;
    if (state.selected !== null) {
      message('error', 'No mirror "' + state.selected + '" here (mirrors: ' +
        state.mirrors.map((m) => m.name).join(', ') + '): showing ' + first + '.');
      window.history.replaceState(null, '', mirrorHref(first));
    }
    state.selected = first;
    state.signature = '';
  }

  function onHashChange() {
    const name = hashMirror();
    selectMirror(name === null ? (state.mirrors.length ? state.mirrors[0].name : null) : name);
  }

  /* How far an active run is: ids compared, or for a full re-index (which
   * compares nothing) the documents indexed, out of the MongoDB count. */
  function runDone(p) {
    const compared = Number(p.compared || 0);
    return p.kind === 'full' ? Math.max(compared, Number(p.repairedCount || 0)) : compared;
  }

  /* One line about an active run: kind, phase, how far out of the count. */
  function runLine(p) {
    const total = p.mongoCount;
    const done = runDone(p);
    const pct = total && total > 0 ? ' (' + Math.min(100, Math.floor((100 * done) / total)) + '%)' : '';
    return '#' + p.runId + ' ' + kindName(p.kind) + ', ' + p.phase + ', ' + num(done) +
      (total !== null && total !== undefined ? ' / ' + num(total) : '') +
      (p.kind === 'full' ? ' indexed' : ' ids compared') + pct;
  }

  /* Every mirror that runs or waits for a slot, each a link to it. */
  function runningList(except) {
    const out = [];
    for (const m of state.mirrors) {
      if (m.name === except || !(m.currentRun || m.queued)) continue;
      if (out.length) out.push('; ');
      out.push(el('a', { href: mirrorHref(m.name), 'data-mirror': m.name, text: m.name }));
      out.push(m.currentRun ? ' ' + runLine(m.currentRun) : ' waits for a slot');
    }
    return out;
  }

  function renderRunning() {
    const list = runningList(null);
    const box = clear($('running'));
    if (list.length === 0) box.appendChild(el('span', { class: 'muted', text: 'No run in progress on any mirror.' }));
    else append(box, ['Running now: ', list]);
  }

  /* A card's last run; none while that run is the active one (said below). */
  function lastRunLine(run, active) {
    if (!run) return el('p', { class: 'muted', text: 'no run yet' });
    if (active && active.runId === run.id) return null;
    return el('p', null, 'last run #' + run.id + ' ' + kindName(run.kind) + ', ',
      el('span', { class: 'st ' + run.status, text: run.status }),
      ', ' + when(run.startedAt) + (duration(run) !== null ? ', took ' + span(duration(run)) : ''));
  }

  /* The mirror's live sync in one line (null when it has none here):
   * state, lag and gaps (GET /api/mirrors' stream, docs/LIVE-SYNC.md). */
  function streamLine(m) {
    const s = m.stream;
    if (!s || (s.state === 'disabled' && !s.gapsTotal)) return null;
    let text = 'live sync ' + s.state;
    if (s.state === 'running') {
      text += s.catchingUp ? ', catching up' : s.reconnecting ? ', reconnecting' : '';
      text += ', lag ' + (s.lagSeconds === null ? '?' : s.lagSeconds + ' s');
    }
    text += ' · ' + num(s.gapsTotal) + (s.gapsTotal === 1 ? ' gap' : ' gaps') +
      (s.gapsOpen ? ', ' + num(s.gapsOpen) + ' open' : '');
    const bad = s.state === 'failed' || s.state === 'stopped' || s.gapsOpen > 0 ||
      (s.lagSeconds !== null && s.lagSeconds > 60);
    return el('p', { class: 'card-stream' + (bad ? ' bad' : ''), title: s.error || '', text: text });
  }

  function renderMirrors() {
    /* rebuilt only when what it shows changed: focus and clicks survive polls */
    const key = JSON.stringify([state.selected, state.chartMirror, state.orphanPolicy.size,
      state.mirrors.map((m) => [m.name, m.mongodbDatabase, m.mongodbCollection, m.opensearchIndex, m.lastRun,
        m.currentRun && [m.currentRun.runId, m.currentRun.phase, m.currentRun.compared, m.currentRun.mongoCount],
        m.queued, m.stream && [m.stream.state, m.stream.lagSeconds, m.stream.gapsTotal,
          m.stream.gapsOpen, m.stream.catchingUp, m.stream.reconnecting, m.stream.error]])]);
    renderRunning();
    if (key === state.mirrorsKey) return;
    state.mirrorsKey = key;
    const box = clear($('mirrors'));
    if (state.mirrors.length === 0) {
      box.appendChild(el('p', { class: 'muted', text: 'No mirrors.' }));
      return;
    }
    for (const m of state.mirrors) {
      const run = m.lastRun;
      const sync = mirrorSync(m);
      const p = m.currentRun;
      const total = p && p.mongoCount && p.mongoCount > 0 ? p.mongoCount : null;
      const card = el('a', {
        href: mirrorHref(m.name), class: 'card' + (m.name === state.selected ? ' selected' : '') + (p ? ' active' : ''),
        'data-mirror': m.name, 'aria-current': m.name === state.selected ? 'true' : null,
      },
      el('h3', null, el('span', { text: m.name }), el('span', { class: 'badge ' + sync.cls, text: sync.text })),
      el('p', { class: 'muted' }, m.mongodbDatabase + '.' + m.mongodbCollection + ' → ' + m.opensearchIndex),
      lastRunLine(run, p),
      streamLine(m),
      p ? el('p', { class: 'card-run' }, 'running ' + runLine(p)) : null,
      p ? el('progress', { max: total || 1, value: total ? Math.min(runDone(p), total) : 0 }) : null,
      m.queued ? el('p', { class: 'muted', text: 'a run waits for a slot' }) : null);
      box.appendChild(card);
    }
  }

  /* Shows a mirror (the hash changed: a card or link clicked, back, forward). */
  function selectMirror(name) {
    if (state.selected === name) return;
    state.selected = name;
    state.signature = '';
    settleSelected();
    renderMirrors();
    renderMirror();
    poll();
  }

  function renderMirror() {
    const m = selectedMirror();
    $('mirror-section').hidden = !m;
    if (!m) return;
    $('mirror-name').textContent = m.name;
    const sync = mirrorSync(m);
    const badge = $('mirror-sync');
    badge.className = 'badge ' + sync.cls;
    badge.textContent = sync.text;
    const since = inSyncSince();
    const st = m.stats || {};
    $('mirror-summary').textContent =
      m.mongodbDatabase + '.' + m.mongodbCollection + ' → ' + m.opensearchIndex +
      (since ? ' · in sync since ' + when(since) : '') +
      ' · schedule ' + (st.isRunning ? 'on, next check ' + when(st.nextCheckAt) : 'off') +
      ' · ' + num(st.totalChecks) + ' runs, ' + num(st.documentsSynced) + ' documents repaired, ' +
      num(st.errors) + ' errors';
    const busy = !!m.currentRun || !!m.queued;
    $('btn-check').disabled = busy;
    $('btn-dry').disabled = busy;
    $('btn-full').disabled = busy;
    $('btn-cancel').disabled = !m.currentRun;
    renderProgress(m);
  }

  /* Start of the newest unbroken row of runs that left the mirror in sync. */
  function inSyncSince() {
    let since = null;
    if (state.chartMirror !== state.selected) return null; /* its runs are not read yet */
    for (let i = state.chartRuns.length - 1; i >= 0; i--) {
      const r = state.chartRuns[i];
      if (!isPass(r)) continue; /* a targeted run neither starts nor breaks it */
      if (syncOf(r).cls !== 'ok') break;
      since = r.finishedAt;
    }
    return since;
  }

  function renderProgress(m) {
    const box = clear($('progress'));
    const p = m.currentRun;
    if (!p) {
      /* another mirror may run: name it, so an idle mirror does not read as an idle service */
      const others = runningList(m.name);
      box.appendChild(el('p', { class: 'muted', id: 'progress-idle',
        text: m.queued ? 'A run of ' + m.name + ' waits for a free slot.' : 'No run in progress on ' + m.name + '.' }));
      if (others.length) box.appendChild(el('p', { id: 'progress-others' }, 'Other mirrors: ', others));
      return;
    }
    const secs = p.elapsedMs / 1000;
    const rate = secs > 0 ? p.compared / secs : 0;
    const total = p.mongoCount;
    let eta = '—';
    if (rate > 0 && total !== null && total > p.compared && p.phase === 'diffing')
      eta = span(((total - p.compared) / rate) * 1000);
    const bar = el('progress', { id: 'progress-bar', max: total && total > 0 ? total : 1,
      value: total && total > 0 ? Math.min(p.compared, total) : 0 });
    box.appendChild(el('p', null, 'Run ', el('strong', { id: 'progress-run', text: '#' + p.runId }),
      ' (' + kindName(p.kind) + ') phase ', el('strong', { id: 'progress-phase', text: p.phase }),
      ', started ' + when(p.startedAt) + ', ' + span(p.elapsedMs) + ' ago'));
    box.appendChild(bar);
    const dl = el('dl', { id: 'progress-figures' });
    const add = (label, value, id) => {
      dl.appendChild(el('dt', { text: label }));
      dl.appendChild(el('dd', { text: value, id }));
    };
    add('ids compared', num(p.compared) + (total !== null ? ' / ' + num(total) : ''), 'progress-compared');
    add('missing', num(p.missingCount));
    add('stale', num(p.staleCount));
    add('orphan', num(p.orphanCount));
    add('indexed', num(p.repairedCount));
    add('deleted', num(p.deletedCount));
    add('failed', num(p.failedCount));
    add('rate', rate > 0 ? num(Math.round(rate)) + ' ids/s' : '—', 'progress-rate');
    add('ETA', eta, 'progress-eta');
    add('MongoDB / index', num(p.mongoCount) + ' / ' + num(p.opensearchCount));
    box.appendChild(dl);
  }

  /* ---- charts ---------------------------------------------------------- */

  function chartRunsLimit() {
    return Number($('chart-runs').value) || 50;
  }

  async function loadChartRuns() {
    const m = selectedMirror();
    if (!m) return;
    const { data } = await api('GET', mirrorPath(m.name) + '/runs?limit=' + chartRunsLimit());
    if (m.name !== state.selected) return; /* another mirror was chosen meanwhile */
    state.chartRuns = (data.runs || []).filter((r) => r.status !== 'running').reverse();
    state.chartMirror = m.name;
    renderCharts();
    renderMirror();
  }

  function renderCharts() {
    drawDrift(state.chartRuns, $('chart-scale').value === 'log');
    drawDurations(state.chartRuns);
  }

  const W = 720;
  const H = 240;
  const M = { l: 56, r: 12, t: 10, b: 34 };

  function xOf(i, n) {
    const w = W - M.l - M.r;
    return M.l + (n === 1 ? w / 2 : (w * (i + 0.5)) / n);
  }

  function axisLabels(g, runs) {
    const n = runs.length;
    const every = Math.max(1, Math.ceil(n / 12));
    runs.forEach((r, i) => {
      if (i % every !== 0 && i !== n - 1) return;
      g.appendChild(svg('text', { x: xOf(i, n), y: H - M.b + 14, 'text-anchor': 'middle', text: '#' + r.id }));
    });
    if (n > 0) {
      g.appendChild(svg('text', { x: M.l, y: H - 4, text: when(runs[0].startedAt) }));
      if (n > 1)
        g.appendChild(svg('text', { x: W - M.r, y: H - 4, 'text-anchor': 'end', text: when(runs[n - 1].startedAt) }));
    }
  }

  function emptyChart(box, text) {
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + 60, role: 'img', 'aria-label': text });
    s.appendChild(svg('text', { x: W / 2, y: 34, 'text-anchor': 'middle', class: 'empty', text }));
    box.appendChild(s);
  }

  function ticks(max, log) {
    if (log) {
      const out = [0];
      for (let v = 1; v <= max * 10 && out.length < 9; v *= 10) out.push(v);
      return out.filter((v) => v <= Math.max(1, max) * 1.0001 || v === 1);
    }
    if (max <= 0) return [0, 1];
    const step0 = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= step0) || mag * 10;
    const out = [];
    /* up to the first tick at or above max, so every bar fits */
    for (let v = 0; out.length < 2 || out[out.length - 1] < max; v += step) out.push(Math.round(v * 1e6) / 1e6);
    return out;
  }

  function drawDrift(runs, log) {
    const box = clear($('chart-drift'));
    const legend = clear($('chart-legend'));
    if (runs.length === 0) {
      emptyChart(box, 'No finished run yet.');
      return;
    }
    const series = SERIES.filter((s) => !s.optional || runs.some((r) => Number(r[s.key] || 0) > 0));
    let max = 0;
    for (const r of runs) for (const s of series) max = Math.max(max, Number(r[s.key] || 0));
    const top = log ? Math.log10(1 + Math.max(max, 1)) : Math.max(max, 1);
    const tk = ticks(max, log);
    const ymax = log ? Math.max(top, Math.log10(1 + tk[tk.length - 1])) : Math.max(top, tk[tk.length - 1]);
    const yOf = (v) => {
      const t = log ? Math.log10(1 + v) : v;
      return H - M.b - ((H - M.t - M.b) * t) / ymax;
    };
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', id: 'drift-svg',
      'aria-label': 'drift found and repaired per run, ' + runs.length + ' runs' });
    const grid = svg('g');
    for (const v of tk) {
      const y = yOf(v);
      grid.appendChild(svg('line', { class: 'grid', x1: M.l, x2: W - M.r, y1: y, y2: y }));
      grid.appendChild(svg('text', { x: M.l - 6, y: y + 4, 'text-anchor': 'end', text: num(v) }));
    }
    grid.appendChild(svg('line', { class: 'axis', x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
    s.appendChild(grid);
    axisLabels(s, runs);
    const n = runs.length;
    for (const se of series) {
      if (n < 2) break;
      const pts = runs.map((r, i) => xOf(i, n).toFixed(1) + ',' + yOf(Number(r[se.key] || 0)).toFixed(1));
      s.appendChild(svg('polyline', { class: 'line ' + se.cls + (se.found ? '' : ' dash'), points: pts.join(' ') }));
    }
    const slot = (W - M.l - M.r) / n;
    runs.forEach((r, i) => {
      const x = xOf(i, n);
      const g = svg('g', { class: 'pt', 'data-run-id': r.id, tabindex: 0 });
      g.appendChild(svg('rect', { class: 'hit', x: x - slot / 2, y: M.t, width: slot, height: H - M.t - M.b }));
      const lines = ['run #' + r.id + ' · ' + kindName(r.kind) + ' · ' + r.status + ' · ' + when(r.startedAt)];
      for (const se of series) {
        const v = Number(r[se.key] || 0);
        lines.push(se.name + ': ' + num(v));
        g.appendChild(svg('circle', { class: se.cls, cx: x, cy: yOf(v), r: n > 60 ? 2 : 3.5 }));
      }
      g.appendChild(svg('title', { text: lines.join('\n') }));
      g.addEventListener('click', () => openReport(r.id));
      g.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') openReport(r.id);
      });
      s.appendChild(g);
    });
    box.appendChild(s);
    for (const se of series)
      legend.appendChild(el('li', { class: se.cls }, el('span', { text: se.name + (se.found ? ' (found)' : '') })));
  }

  function drawDurations(runs) {
    const box = clear($('chart-duration'));
    const rows = runs.filter((r) => duration(r) !== null);
    if (rows.length === 0) {
      emptyChart(box, 'No finished run yet.');
      return;
    }
    const secs = rows.map((r) => Math.max(0, duration(r)) / 1000);
    const tk = ticks(Math.max(...secs), false);
    const ymax = tk[tk.length - 1] || 1;
    const yOf = (v) => H - M.b - ((H - M.t - M.b) * v) / ymax;
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', id: 'duration-svg',
      'aria-label': 'run durations, ' + rows.length + ' runs' });
    for (const v of tk) {
      s.appendChild(svg('line', { class: 'grid', x1: M.l, x2: W - M.r, y1: yOf(v), y2: yOf(v) }));
      s.appendChild(svg('text', { x: M.l - 6, y: yOf(v) + 4, 'text-anchor': 'end', text: span(v * 1000) }));
    }
    s.appendChild(svg('line', { class: 'axis', x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
    axisLabels(s, rows);
    const n = rows.length;
    const bw = Math.max(2, Math.min(28, ((W - M.l - M.r) / n) * 0.7));
    rows.forEach((r, i) => {
      const y = yOf(secs[i]);
      const bar = svg('rect', { class: 'bar st-' + r.status, 'data-run-id': r.id, x: xOf(i, n) - bw / 2, y,
        width: bw, height: Math.max(1, H - M.b - y) },
      svg('title', { text: 'run #' + r.id + ' · ' + kindName(r.kind) + ' · ' + r.status + ' · ' + span(secs[i] * 1000) }));
      bar.addEventListener('click', () => openReport(r.id));
      s.appendChild(bar);
    });
    box.appendChild(s);
  }

  /* ---- history --------------------------------------------------------- */

  function historyQuery(before) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    const mirror = $('filter-mirror').value;
    const status = $('filter-status').value;
    if (mirror) q.set('mirror', mirror);
    if (status) q.set('status', status);
    if (before) q.set('before', String(before));
    return '/api/reconciliation/runs?' + q.toString();
  }

  async function loadHistory(more) {
    const { data } = await api('GET', historyQuery(more ? state.nextBefore : null));
    state.history = more ? state.history.concat(data.runs || []) : data.runs || [];
    state.nextBefore = data.nextBefore === undefined ? null : data.nextBefore;
    renderHistory();
  }

  function renderHistory() {
    const body = clear(document.querySelector('#history tbody'));
    const kind = $('filter-kind').value;
    const rows = state.history.filter((r) => !kind || r.kind === kind);
    const live = new Map(state.mirrors.filter((m) => m.currentRun).map((m) => [m.currentRun.runId, m.currentRun]));
    for (const row of rows) {
      /* a running run's counts: the live progress, newer than the page's copy */
      const r = row.status === 'running' && live.has(row.id) ? Object.assign({}, row, live.get(row.id)) : row;
      const n = (k) => el('td', { class: 'num', text: num(r[k]) });
      const tr = el('tr', { 'data-run-id': r.id, 'data-mirror': r.mirror, class: r.id === state.reportId ? 'current' : null },
        el('td', null, el('button', { type: 'button', class: 'link', text: '#' + r.id })),
        el('td', { text: r.mirror }),
        el('td', { text: kindName(r.kind) }),
        el('td', { text: r.trigger }),
        el('td', null, el('span', { class: 'st ' + r.status, text: r.status })),
        el('td', { text: when(r.startedAt) }),
        el('td', { text: r.status === 'running' ? 'running' : span(duration(r)) }),
        n('compared'), n('missingCount'), n('staleCount'), n('orphanCount'), n('repairedCount'),
        n('deletedCount'), n('failedCount'));
      tr.addEventListener('click', () => openReport(r.id));
      body.appendChild(tr);
    }
    if (rows.length === 0)
      body.appendChild(el('tr', null, el('td', { colspan: 14, class: 'muted', text: 'No run matches.' })));
    $('history-count').textContent = rows.length + ' of ' + state.history.length + ' loaded runs';
    $('history-more').hidden = state.nextBefore === null;
  }

  function fillMirrorFilter() {
    const sel = $('filter-mirror');
    const have = Array.from(sel.options).map((o) => o.value);
    const want = [''].concat(state.mirrors.map((m) => m.name));
    if (have.join('\u0000') === want.join('\u0000')) return;
    const cur = sel.value;
    clear(sel);
    sel.appendChild(el('option', { value: '', text: 'all' }));
    for (const m of state.mirrors) sel.appendChild(el('option', { value: m.name, text: m.name }));
    sel.value = want.includes(cur) ? cur : '';
  }

  /* ---- a run's report -------------------------------------------------- */

  function table(cols, rows, cells) {
    const t = el('table', null, el('thead', null, el('tr', null, cols.map((c) => el('th', { text: c })))));
    const b = el('tbody');
    for (const r of rows) b.appendChild(el('tr', null, cells(r)));
    t.appendChild(b);
    return el('div', { class: 'scroll' }, t);
  }

  function idCell(mirror, id) {
    if (state.diffLinks && mirror) {
      const href = DIFF_ROUTE.replace('{m}', encodeURIComponent(mirror)).replace('{doc}', encodeURIComponent(id));
      return el('td', { class: 'wrap' }, el('a', { class: 'id', href, target: '_blank', rel: 'noopener noreferrer', text: id }));
    }
    return el('td', { class: 'wrap id', text: id });
  }

  async function openReport(id) {
    state.reportId = id;
    try {
      const { data } = await api('GET', '/api/reconciliation/runs/' + encodeURIComponent(id));
      renderReport(data.run);
      renderHistory();
    } catch (e) {
      apiMessage('run #' + id, e);
    }
  }

  function renderReport(run) {
    state.reportStatus = run.status;
    $('report-section').hidden = false;
    $('report-title').textContent = '#' + run.id + ' of ' + run.mirror;
    const box = clear($('report'));
    box.appendChild(el('p', null, kindName(run.kind) + ', trigger ' + run.trigger + ', ',
      el('span', { class: 'st ' + run.status, id: 'report-status', text: run.status }),
      ', phase ' + run.phase + ', started ' + when(run.startedAt) + ', finished ' + when(run.finishedAt) +
      (duration(run) !== null ? ' (' + span(duration(run)) + ')' : '') +
      (run.resumeCount ? ', resumed ' + run.resumeCount + ' times' : '')));
    if (run.error) box.appendChild(el('p', { class: 'error-text', text: run.error }));

    box.appendChild(el('h3', { text: 'Counts' }));
    const counts = [['MongoDB', 'mongoCount'], ['index', 'opensearchCount'], ['compared', 'compared'],
      ['missing', 'missingCount'], ['stale', 'staleCount'], ['orphan', 'orphanCount'],
      ['duplicate', 'duplicateCount'], ['conflict', 'conflictCount'], ['skipped', 'skippedCount'],
      ['indexed', 'repairedCount'], ['deleted', 'deletedCount'], ['failed', 'failedCount']];
    box.appendChild(table(counts.map((c) => c[0]), [run], (r) =>
      counts.map((c) => el('td', { class: 'num', text: num(r[c[1]]) }))));
    if (run.verify) box.appendChild(el('p', { id: 'report-verify', text: run.verify === 'summary' ? 'Verified by range summaries: ' + num(run.rangesSummarized) + ' ranges in sync by their summaries, ' + num(run.rangesDescended) + ' streamed' + (run.verifyNote ? '; ' + run.verifyNote : '') : 'Verified by merge (every index id streamed)' + (run.verifyNote ? ': ' + run.verifyNote : '') }));
    /* copies the keep clause protects: not drift, and not the orphans
     * RECONCILE_ORPHANS=report leaves (said apart, below) */
    if (run.keptCount > 0)
      box.appendChild(el('p', { id: 'report-kept-copies', text: num(run.keptCount) +
        (run.keptCount === 1 ? ' copy' : ' copies') + ' kept by OPENSEARCH_KEEP_QUERY (no MongoDB document on purpose: never orphans, never deleted)' }));
    const kept = run.status === 'completed' ? keptOrphans(run) : null;
    if (kept)
      box.appendChild(el('p', { id: 'report-kept', class: 'kept', text: keptText(kept) +
        (kept.policy === 'report' ? ' (still in the index: RECONCILE_ORPHANS=delete deletes them, behind the brake on deletes)' : '') }));

    box.appendChild(el('h3', { text: 'Batches' }));
    const batches = run.batches || [];
    if (batches.length === 0) box.appendChild(el('p', { class: 'muted', text: 'No batch.' }));
    else box.appendChild(table(['action', 'status', 'batches', 'documents', 'bytes', 'ok', 'failed', 'attempts', 'time'],
      batches, (b) => [el('td', { text: b.action }), el('td', { text: b.status }),
        el('td', { class: 'num', text: num(b.batches) }), el('td', { class: 'num', text: num(b.docs) }),
        el('td', { class: 'num', text: num(b.bytes) }), el('td', { class: 'num', text: num(b.ok) }),
        el('td', { class: 'num', text: num(b.failed) }), el('td', { class: 'num', text: num(b.attempts) }),
        el('td', { class: 'num', text: span(b.tookMs) })]));

    box.appendChild(el('h3', { text: 'Errors' + ((run.errors || []).length >= 20 ? ' (first 20)' : '') }));
    const errors = run.errors || [];
    if (errors.length === 0) box.appendChild(el('p', { class: 'muted', text: 'No error.' }));
    else box.appendChild(table(['at', 'phase', 'source', 'batch', 'id', 'code', 'message'], errors, (e) => [
      el('td', { text: when(e.at) }), el('td', { text: e.phase }), el('td', { text: e.source }),
      el('td', { class: 'num', text: e.batch === null ? '—' : num(e.batch) }),
      e.id === null || e.id === undefined ? el('td', { text: '—' }) : idCell(run.mirror, e.id),
      el('td', { text: e.code }), el('td', { class: 'wrap error-text', text: e.message })]));

    box.appendChild(el('h3', { text: 'Drifted ids (a sample)' }));
    const sample = run.driftSample || [];
    if (sample.length === 0) {
      box.appendChild(el('p', { class: 'muted', text: 'No drift.' }));
    } else {
      const t = table(['kind', 'id', 'status'], sample, (d) =>
        [el('td', { text: d.kind }), idCell(run.mirror, d.id), el('td', { text: d.status })]);
      t.id = 'drift-sample';
      box.appendChild(t);
      const more = el('button', { type: 'button', id: 'drift-more', text: 'Load every drifted id' });
      idsLoader(run, t, more);
      box.appendChild(more);
    }

    const events = run.events || [];
    if (events.length > 0) {
      box.appendChild(el('h3', { text: 'Events' }));
      box.appendChild(table(['at', 'event', 'detail'], events, (e) => [el('td', { text: when(e.at) }),
        el('td', { text: e.event }), el('td', { class: 'wrap', text: e.detail === null ? '' : e.detail })]));
    }
  }

  /* Every drifted id of the run, 500 at a time, into the sample's table. */
  function idsLoader(run, tableBox, button) {
    let after = null;
    let first = true;
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const q = new URLSearchParams({ limit: '500' });
        if (after) q.set('after', after);
        const { data } = await api('GET', '/api/reconciliation/runs/' + run.id + '/ids?' + q.toString());
        const body = tableBox.querySelector('tbody');
        if (first) clear(body);
        first = false;
        for (const d of data.ids || [])
          body.appendChild(el('tr', null, el('td', { text: d.kind }), idCell(run.mirror, d.id),
            el('td', { text: d.status === null ? '' : d.status })));
        after = data.nextAfter || null;
        if (after) {
          button.textContent = 'More drifted ids';
          button.disabled = false;
        } else {
          button.remove();
        }
      } catch (e) {
        button.disabled = false;
        apiMessage('drifted ids of run #' + run.id, e);
      }
    });
  }

  /* ---- actions --------------------------------------------------------- */

  async function act(what, method, path, body) {
    try {
      const { status, data } = await api(method, path, body);
      const id = data.runId === null || data.runId === undefined ? '' : ' #' + data.runId;
      message('info', what + ': ' + status + ' ' + (data.message || 'ok') + id);
    } catch (e) {
      apiMessage(what, e);
    }
    state.signature = '';
    poll();
  }

  function onCheck(dry) {
    const m = selectedMirror();
    if (m) act(dry ? 'dry run' : 'check', 'POST', mirrorPath(m.name) + '/check', { wait: false, dryRun: dry });
  }

  function onFull() {
    const m = selectedMirror();
    const b = $('btn-full');
    if (!m) return;
    if (state.fullArmed !== m.name) {
      /* a second click within five seconds confirms */
      state.fullArmed = m.name;
      b.textContent = 'Confirm full re-index of ' + m.name;
      b.classList.add('armed');
      setTimeout(disarmFull, 5000);
      return;
    }
    disarmFull();
    act('full re-index', 'POST', mirrorPath(m.name) + '/full', { wait: false });
  }

  function disarmFull() {
    state.fullArmed = null;
    $('btn-full').textContent = 'Full re-index';
    $('btn-full').classList.remove('armed');
  }

  function onCancel() {
    const m = selectedMirror();
    if (m && m.currentRun)
      act('cancel', 'POST', mirrorPath(m.name) + '/runs/' + m.currentRun.runId + '/cancel');
  }

  /* ---- polling --------------------------------------------------------- */

  async function poll() {
    const seq = ++state.pollSeq;
    clearTimeout(state.timer);
    state.timer = null;
    let active = false;
    try {
      const { data } = await api('GET', '/api/mirrors');
      state.mirrors = data.mirrors || [];
      settleSelected();
      active = state.mirrors.some((m) => m.currentRun || m.queued);
      fillMirrorFilter();
      renderMirrors();
      renderMirror();
      if (active) renderHistory();
      const sig = state.selected + '|' + state.mirrors.map((m) => [m.name, m.lastRun ? m.lastRun.id : '',
        m.lastRun ? m.lastRun.status : '', m.currentRun ? m.currentRun.runId : '', m.queued].join(':')).join('|');
      if (sig !== state.signature) {
        await loadChartRuns();
        if (await loadPolicies()) {
          renderMirrors();
          renderMirror();
        }
        await loadHistory(false);
        if (state.reportId !== null && state.reportStatus === 'running') await openReport(state.reportId);
        state.signature = sig;
      }
      $('poll-state').textContent = 'updated ' + when(new Date().toISOString());
      state.readBlocked = false;
    } catch (e) {
      if (e.status === 401) {
        /* reads need the token (API_TOKEN_READ=true): wait for it */
        state.readBlocked = true;
        message('error', 'This service needs the API token to read: enter it above (401 ' + e.message + ').');
        return;
      }
      apiMessage('refresh', e);
    }
    /* only the newest poll schedules the next one */
    if (seq === state.pollSeq && !state.readBlocked && !document.hidden) {
      clearTimeout(state.timer);
      state.timer = setTimeout(poll, active ? POLL_ACTIVE_MS : POLL_MS);
    }
  }

  async function detectDiffRoute() {
    try {
      const { data } = await api('GET', '/');
      $('service-version').textContent = data.version ? 'v' + data.version : '';
      if (DIFF_LINKS === 'auto')
        state.diffLinks = (data.endpoints || []).some((e) => e.path === DIFF_ROUTE && e.method === 'GET');
    } catch (e) {
      /* without the list (read token missing): no links */
    }
  }

  function start() {
    $('token-form').addEventListener('submit', useToken);
    $('token-forget').addEventListener('click', forgetToken);
    $('message-close').addEventListener('click', () => { $('message').hidden = true; });
    $('btn-check').addEventListener('click', () => onCheck(false));
    $('btn-dry').addEventListener('click', () => onCheck(true));
    $('btn-full').addEventListener('click', onFull);
    $('btn-cancel').addEventListener('click', onCancel);
    $('chart-scale').addEventListener('change', renderCharts);
    $('chart-runs').addEventListener('change', () => loadChartRuns().catch((e) => apiMessage('runs', e)));
    for (const id of ['filter-mirror', 'filter-status'])
      $(id).addEventListener('change', () => loadHistory(false).catch((e) => apiMessage('history', e)));
    $('filter-kind').addEventListener('change', renderHistory);
    $('history-more').addEventListener('click', () => loadHistory(true).catch((e) => apiMessage('history', e)));
    $('report-close').addEventListener('click', () => {
      $('report-section').hidden = true;
      state.reportId = null;
      renderHistory();
    });
    window.addEventListener('hashchange', onHashChange);
    state.selected = hashMirror();
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) poll();
    });
    showTokenState();
    detectDiffRoute().then(poll);
  }

  start();
})();
