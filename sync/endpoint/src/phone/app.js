// The turn page's script: follows the turn over server-sent events and swaps in the fragment
// the endpoint renders (texts live on the server). Without it the page still shows the turn as
// it was when loaded, and the survey form still posts.
"use strict";
(function () {
  const main = document.getElementById("turn");
  const live = document.getElementById("live");
  if (!main || !live || !main.dataset.events || !window.EventSource) return;
  let lastStatus = null;
  const source = new EventSource(main.dataset.events);
  source.addEventListener("turn", (ev) => {
    let update;
    try {
      update = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    live.innerHTML = update.html;
    const status = update.view.status;
    if (status === "called" && lastStatus !== null && lastStatus !== "called" && navigator.vibrate) {
      navigator.vibrate([300, 100, 300]);
    }
    lastStatus = status;
    document.body.dataset.status = status;
    document.body.dataset.offline = update.view.offline ? "1" : "0";
  });
})();
