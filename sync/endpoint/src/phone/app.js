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
    // Only a change is swapped in: the live region announces what changed, not the same again.
    const next = document.createElement("template");
    next.innerHTML = update.html;
    if (next.innerHTML !== live.innerHTML) live.innerHTML = next.innerHTML;
    const status = update.view.status;
    if (status === "called" && lastStatus !== null && lastStatus !== "called" && navigator.vibrate) {
      navigator.vibrate([300, 100, 300]);
    }
    lastStatus = status;
    document.body.dataset.status = status;
    // Once the turn is over there is nothing left to be notified of.
    const push = document.getElementById("push");
    if (push && ["served", "no_show", "walked_out"].includes(status)) {
      push.remove();
      const note = document.getElementById("push-status");
      if (note) note.textContent = "";
    }
    document.body.dataset.offline = update.view.offline ? "1" : "0";
  });
})();

// Opt-in to Web Push: a button, shown only where the browser can subscribe.
(function () {
  const main = document.getElementById("turn");
  const button = document.getElementById("push");
  const status = document.getElementById("push-status");
  if (!main || !button || !main.dataset.vapid) return;
  if (!("serviceWorker" in navigator) || !window.PushManager || !window.Notification) return;
  button.hidden = false;
  const key = (b64) => {
    const s = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  };
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      if ((await Notification.requestPermission()) !== "granted") throw new Error("denied");
      const reg = await navigator.serviceWorker.register("/t/sw.js", { scope: "/t/" });
      await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: key(main.dataset.vapid),
      });
      const resp = await fetch(main.dataset.push, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(sub),
      });
      if (!resp.ok) throw new Error("refused");
      status.textContent = button.dataset.done;
      button.hidden = true;
    } catch (e) {
      status.textContent = button.dataset.denied;
      button.disabled = false;
    }
  });
})();
