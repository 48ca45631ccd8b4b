// Installed by sloprobe before the page's own scripts (CDP addScriptToEvaluateOnNewDocument),
// so no entry or error is missed. Buffered observers also replay what came before.
(() => {
  if (window.__sloprobe) return;
  const s = (window.__sloprobe = { lcp: null, lcpEl: null, lcpUrl: '', cls: 0, longtasks: [], longtasksLost: false, lastBusy: 0, errors: 0, firstError: '', interactions: {}, interactionsKept: 0, console: [] });
  // Resource Timing (the fallback without DevTools) keeps 250 entries by default.
  try { performance.setResourceTimingBufferSize(20000); } catch (e) {}
  const observe = (type, each) => {
    try {
      new PerformanceObserver((list) => list.getEntries().forEach(each)).observe({ type, buffered: true });
    } catch (e) {}
  };
  observe('largest-contentful-paint', (e) => {
    s.lcp = e.startTime;
    s.lcpEl = e.element || null;
    s.lcpUrl = e.url || '';
  });
  // CLS as web-vitals computes it, as the shifts come (nothing kept per shift): the
  // largest session window (shifts < 1 s apart, a window at most 5 s). Shifts right
  // after user input do not count.
  let windowValue = 0, windowFirst = 0, windowLast = 0;
  observe('layout-shift', (e) => {
    if (e.hadRecentInput) return;
    const t = e.startTime;
    if (windowValue && t - windowLast < 1000 && t - windowFirst < 5000) {
      windowValue += e.value;
    } else {
      windowValue = e.value;
      windowFirst = t;
    }
    windowLast = t;
    s.cls = Math.max(s.cls, windowValue);
  });
  // Kept for TBT and time to interactive; past the cap those are unmeasured, not wrong.
  observe('longtask', (e) => {
    if (s.longtasks.length < 10000) s.longtasks.push([e.startTime, e.duration]);
    else s.longtasksLost = true;
    s.lastBusy = Math.max(s.lastBusy, e.startTime + e.duration);
  });
  // Event Timing as web-vitals' onINP reads it: events of 40 ms or more, and the first
  // input; an interaction's latency is its longest event. Kept: [page wall ms, duration].
  const interaction = (e) => {
    if (!e.interactionId) return;
    const had = s.interactions[e.interactionId];
    if (!had && s.interactionsKept >= 1000) return;
    if (!had) s.interactionsKept++;
    if (!had || e.duration > had[1]) s.interactions[e.interactionId] = [performance.timeOrigin + e.startTime, e.duration];
  };
  try {
    new PerformanceObserver((list) => list.getEntries().forEach(interaction)).observe({ type: 'event', buffered: true, durationThreshold: 40 });
  } catch (e) {}
  observe('first-input', interaction);
  // The console, for a failed run's evidence: the first 50 messages, 300 characters each.
  const note = (level, args) => {
    if (s.console.length >= 50) return;
    let text = '';
    try { text = Array.from(args, (a) => (typeof a === 'string' ? a : String(a))).join(' '); } catch (e) { text = '(unprintable)'; }
    s.console.push(level + ': ' + text.slice(0, 300));
  };
  for (const level of ['error', 'warn', 'info', 'log']) {
    const original = console[level];
    if (typeof original !== 'function') continue;
    console[level] = function () { note(level, arguments); return original.apply(this, arguments); };
  }
  addEventListener('error', (e) => {
    if (e instanceof ErrorEvent) note('uncaught', [e.message]);
  }, true);
  addEventListener('error', (e) => {
    if (!(e instanceof ErrorEvent)) return; // a failed <img> is not a script error
    s.errors++;
    if (!s.firstError) s.firstError = String(e.message || 'error');
  }, true);
  // A navigation away has begun (a form posted, a link followed): the journey waits for
  // the next document rather than take this one as the step's end.
  addEventListener('beforeunload', () => { s.leaving = true; }, true);
  addEventListener('pagehide', () => { s.leaving = true; }, true);
  // A form submitted by a click starts its navigation a task later, after WebDriver's
  // click has returned: expected here so the step waits for it (seen failing in CI).
  addEventListener('submit', (e) => {
    const form = e.target;
    if (e.defaultPrevented || !form || form.method === 'dialog') return;
    const target = (e.submitter && e.submitter.getAttribute('formtarget')) || form.target;
    if (!target || target === '_self') s.expecting = true;
    // A listener after this one may still cancel the submit.
    setTimeout(() => { if (e.defaultPrevented) s.expecting = false; }, 0);
  });
  // Any other navigation to a new document the page starts (a link, location.assign).
  if (window.navigation) {
    navigation.addEventListener('navigate', (e) => {
      if (!e.destination.sameDocument && !e.hashChange) s.expecting = true;
    });
    // Intercepted (kept in this document) or aborted: nothing to wait for.
    navigation.addEventListener('navigatesuccess', () => { s.expecting = false; });
    navigation.addEventListener('navigateerror', () => { s.expecting = false; });
  }
  addEventListener('unhandledrejection', (e) => {
    s.errors++;
    if (!s.firstError) s.firstError = 'unhandled rejection: ' + String(e.reason);
  });
})();
