// Installed by sloprobe before the page's own scripts (CDP addScriptToEvaluateOnNewDocument),
// so no entry or error is missed. Buffered observers also replay what came before.
(() => {
  if (window.__sloprobe) return;
  const s = (window.__sloprobe = { lcp: null, lcpEl: null, lcpUrl: '', shifts: [], longtasks: [], errors: 0, firstError: '' });
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
  // Shifts right after user input do not count (web-vitals' CLS rule).
  observe('layout-shift', (e) => { if (!e.hadRecentInput) s.shifts.push([e.startTime, e.value]); });
  observe('longtask', (e) => s.longtasks.push([e.startTime, e.duration]));
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
