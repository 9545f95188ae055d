// The turn page's service worker: shows the turn's push notifications (the endpoint sends
// JSON: title, body, url, tag) and opens the turn page when one is tapped.
"use strict";
self.addEventListener("push", (event) => {
  let msg = { title: "", body: "", url: "/", tag: "turn" };
  try {
    msg = event.data.json();
  } catch (e) {
    msg.title = event.data ? event.data.text() : "";
  }
  event.waitUntil(
    self.registration.showNotification(msg.title, {
      body: msg.body,
      tag: msg.tag,
      renotify: true,
      data: { url: msg.url },
    })
  );
});
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(self.clients.openWindow(url));
});
