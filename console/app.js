// The console's shell: the login form, the navigation, and one module per page.

import { apiKey, call, forgetApiKey, setApiKey } from "./api.js";
import { failure, h } from "./dom.js";
import * as repository from "./repository.js";
import * as store from "./store.js";
import * as lookup from "./lookup.js";
import * as snapshots from "./snapshots.js";
import * as access from "./access.js";

const PAGES = { repository, store, lookup, snapshots, access };

const $ = (id) => document.getElementById(id);

// A page's periodic refresh, stopped when another page opens.
let refreshTimer = null;

function showLogin(message) {
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("page").replaceChildren();
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  $("login-key").focus();
}

async function showPage() {
  clearInterval(refreshTimer);
  if (!apiKey()) return showLogin();
  const name = location.hash.replace(/^#\//, "") || "repository";
  const page = PAGES[name] || PAGES.repository;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === name);
  }
  const target = $("page");
  target.dataset.page = name;
  target.dataset.state = "loading";
  const draw = async () => {
    const content = h("div", {});
    try {
      await page.render(content);
    } catch (error) {
      if (error.status === 401) {
        forgetApiKey();
        return showLogin("The key is no longer accepted.");
      }
      content.replaceChildren(failure(error, "this page"));
    }
    if (target.dataset.page === name) {
      target.replaceChildren(content);
      target.dataset.state = "ready";
    }
  };
  await draw();
  if (page.REFRESH_SECONDS) refreshTimer = setInterval(draw, page.REFRESH_SECONDS * 1000);
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("login-key");
  setApiKey(input.value);
  input.value = "";
  try {
    // Any valid key may log in; each page then shows what its roles let it see.
    await call("/console/api/repository");
  } catch (error) {
    if (error.status === 401 || error.status === undefined) {
      forgetApiKey();
      return showLogin(`Not logged in: ${error.message}`);
    }
  }
  if (!location.hash) location.hash = "#/repository";
  else showPage();
});

$("logout").addEventListener("click", () => {
  forgetApiKey();
  location.hash = "";
  showLogin();
});

window.addEventListener("hashchange", showPage);
showPage();
