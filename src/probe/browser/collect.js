// Read by sloprobe after load + settle. Times are milliseconds from navigation start, as
// the Performance APIs give them; sloprobe converts.
const s = window.__sloprobe || { cls: 0, longtasks: [], longtasksLost: false, errors: 0, firstError: '' };
const nav = performance.getEntriesByType('navigation')[0];
const fcpEntry = performance.getEntriesByName('first-contentful-paint')[0];
const fcp = fcpEntry ? fcpEntry.startTime : null;
const activation = (nav && nav.activationStart) || 0;

const selector = (el) => {
  if (!el || !el.tagName) return '';
  const parts = [];
  for (let n = el; n && n.nodeType === 1 && parts.length < 5; n = n.parentElement) {
    let p = n.tagName.toLowerCase();
    if (n.id) { parts.unshift(p + '#' + n.id); break; }
    if (n.classList && n.classList.length) p += '.' + Array.from(n.classList).slice(0, 2).join('.');
    parts.unshift(p);
  }
  return parts.join(' > ');
};

const resources = performance.getEntriesByType('resource').map((e) => ({
  url: e.name,
  initiator: e.initiatorType,
  mime: e.contentType || '',
  encoded: e.encodedBodySize,
  transfer: e.transferSize,
  responseStart: e.responseStart,
}));
const positive = (v) => (typeof v === 'number' && v > 0 ? v : null);
// Chromium shows its own error page when the navigation itself failed; its text names
// the network error (ERR_CONNECTION_REFUSED, ...).
// An HTTP error with an empty body also gets one ("HTTP ERROR 429").
const errorText = location.protocol === 'chrome-error:' && document.body ? document.body.innerText : '';
const httpError = errorText.match(/HTTP ERROR (\d{3})/);
const errorPage = location.protocol !== 'chrome-error:' || httpError
  ? ''
  : (errorText.match(/ERR_[A-Z0-9_]+/) || ['ERR_UNKNOWN'])[0];
return {
  url: location.href,
  errorPage,
  status: httpError ? Number(httpError[1]) : (nav && nav.responseStatus) || 0,
  readyState: document.readyState,
  ttfb: nav ? Math.max(nav.responseStart - activation, 0) : null,
  fcp: fcp === null ? null : Math.max(fcp - activation, 0),
  lcp: s.lcp === null || s.lcp === undefined ? null : Math.max(s.lcp - activation, 0),
  lcpElement: selector(s.lcpEl),
  lcpUrl: s.lcpUrl || '',
  cls: s.cls,
  longTasks: s.longtasksLost ? null : s.longtasks,
  now: performance.now(),
  timeOrigin: performance.timeOrigin,
  domContentLoaded: nav ? positive(nav.domContentLoadedEventStart) : null,
  load: nav ? positive(nav.loadEventStart) : null,
  errors: s.errors,
  firstError: s.firstError,
  document: nav ? { url: nav.name, mime: nav.contentType || 'text/html', encoded: nav.encodedBodySize, transfer: nav.transferSize } : null,
  resources,
};
