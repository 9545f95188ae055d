// Shows why the last PIN entry failed (the server redirects with ?error=pin|locked).
"use strict";
const reason = new URLSearchParams(location.search).get("error");
const box = document.getElementById("error");
if (reason) {
  box.hidden = false;
  box.textContent = reason === "locked"
    ? "Demasiados intentos: espere un minuto · Too many attempts: wait a minute"
    : "PIN incorrecto · Wrong PIN";
}
