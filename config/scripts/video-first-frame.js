// metrics_script for a browser probe: player start to first frame.
// Plays a fresh copy of the page's first <video> (same source) and returns the time from
// play() to the first frame the compositor presented (requestVideoFrameCallback), in ms.
//
//   metrics_script = "scripts/video-first-frame.js"
//   script_metrics = { first_frame = "ms" }
//   [probe.budget]
//   first_frame = "1s"
const page = document.querySelector('video');
if (!page) return {};
const video = document.createElement('video');
video.muted = true;
video.playsInline = true;
if (page.srcObject) video.srcObject = page.srcObject;
else video.src = page.currentSrc || page.src;
video.style.position = 'fixed';
video.style.width = '64px';
document.body.appendChild(video);
return new Promise((resolve, reject) => {
  const start = performance.now();
  video.requestVideoFrameCallback((now, frame) => {
    resolve({ first_frame: Math.max(0, (frame.presentationTime || now) - start) });
    video.remove();
  });
  video.play().catch(reject);
  setTimeout(() => reject(new Error('no video frame within 10 s')), 10000);
});
