// Installed by sloprobe before the page's own scripts (CDP addScriptToEvaluateOnNewDocument),
// so no entry or error is missed. Buffered observers also replay what came before.
(() => {
  if (window.__sloprobe) return;
  const s = (window.__sloprobe = { lcp: null, lcpEl: null, lcpUrl: '', cls: 0, longtasks: [], longtasksLost: false, lastBusy: 0, errors: 0, firstError: '' });
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
  addEventListener('error', (e) => {
    if (!(e instanceof ErrorEvent)) return; // a failed <img> is not a script error
    s.errors++;
    if (!s.firstError) s.firstError = String(e.message || 'error');
  }, true);
  addEventListener('unhandledrejection', (e) => {
    s.errors++;
    if (!s.firstError) s.firstError = 'unhandled rejection: ' + String(e.reason);
  });
})();
