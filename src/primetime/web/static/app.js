/* Primetime web: progressive enhancement of server-rendered pages, in plain JS.
 *
 * Every page works without this file (forms post and redirect). With it:
 *  - form[data-swap="#target"]: submitted with fetch (headers X-Fragment: 1 and the page's
 *    X-CSRF-Token, besides the form's own csrf_token field); the answer is
 *    swapped into #target, or, when it holds [data-oob="#id"] parts, each part into its own
 *    element (like htmx's out-of-band swaps). A [data-status] text is announced.
 *  - input[data-instant="/url"]: instant results into [data-target] while typing.
 *  - [data-poll="/url"]: refreshed every data-interval ms while the page is visible.
 *  - [data-refresh="/url"]: refreshed when the page comes back from the back/forward cache.
 *  - button[data-scroll="±1"]: scrolls its row by about one screen.
 */
(() => {
  "use strict";

  const reduceMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  /** Show a short message in the toast (announced by its role="status"). */
  function announce(text, visible = true) {
    const el = document.getElementById(visible ? "status" : "sr-status");
    if (!el || !text) return;
    el.textContent = "";
    window.requestAnimationFrame(() => {
      el.textContent = text;
      if (!visible) return;
      el.classList.add("show");
      window.clearTimeout(announce.timer);
      announce.timer = window.setTimeout(() => el.classList.remove("show"), 4000);
    });
  }

  /** The page's CSRF token (the server checks it on every POST; forms also carry it). */
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /** GET or POST for an HTML fragment; never throws for HTTP errors. */
  async function fetchFragment(url, init = {}) {
    const post = (init.method || "GET").toUpperCase() === "POST";
    const resp = await fetch(url, {
      credentials: "same-origin",
      ...init,
      headers: {
        "X-Fragment": "1",
        ...(post ? { "X-CSRF-Token": csrfToken() } : {}),
        ...(init.headers || {}),
      },
    });
    return { ok: resp.ok, status: resp.status, html: await resp.text() };
  }

  function parse(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html;
    return tpl.content;
  }

  function statusOf(fragment) {
    const el = fragment.querySelector("[data-status]:not([data-status=''])");
    return el ? el.dataset.status : "";
  }

  /** Swap a fragment into the page; returns its status text. */
  function swap(targetSelector, html) {
    const fragment = parse(html);
    const said = statusOf(fragment);
    const parts = fragment.querySelectorAll("[data-oob]");
    if (parts.length) {
      parts.forEach((part) => {
        const target = document.querySelector(part.dataset.oob);
        if (target) target.replaceChildren(...Array.from(part.childNodes));
      });
    } else {
      const target = document.querySelector(targetSelector);
      if (target) target.replaceChildren(fragment);
    }
    return said;
  }

  // ---------------------------------------------------------------- forms
  document.addEventListener("submit", async (ev) => {
    const form = ev.target instanceof HTMLFormElement ? ev.target : null;
    if (!form || !form.dataset.swap) return;
    ev.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    const submitter = ev.submitter;
    const body = new FormData(form, submitter || undefined);
    const key = submitter && submitter.name ? [submitter.name, submitter.value] : null;
    const where = form.dataset.swap;
    form.setAttribute("aria-busy", "true");
    try {
      // getAttribute: form.action would be clobbered by a control named "action"
      const r = await fetchFragment(form.getAttribute("action"), { method: "POST", body });
      if (r.ok) {
        announce(swap(where, r.html));
        const again =
          (key && document.querySelector(`${where} button[name="${key[0]}"][value="${key[1]}"]`)) ||
          document.querySelector(`${where} button`);
        if (again) again.focus({ preventScroll: true });
      } else {
        announce(statusOf(parse(r.html)) || `That did not work (HTTP ${r.status}).`);
      }
    } catch (_err) {
      announce("Network error: please try again.");
    } finally {
      form.removeAttribute("aria-busy");
    }
  });

  // --------------------------------------------------------------- search
  document.querySelectorAll("input[data-instant]").forEach((input) => {
    let timer = 0;
    let sequence = 0;
    input.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(async () => {
        const q = input.value.trim();
        const mine = ++sequence;
        try {
          const r = await fetchFragment(`${input.dataset.instant}?q=${encodeURIComponent(q)}`);
          if (mine !== sequence || !r.ok) return; // a newer keystroke won
          announce(swap(input.dataset.target, r.html), false);
          const url = q ? `${window.location.pathname}?q=${encodeURIComponent(q)}` : window.location.pathname;
          window.history.replaceState(null, "", url);
        } catch (_err) {
          announce("Network error: please try again.");
        }
      }, 120);
    });
  });

  // ------------------------------------------------------ polls, refreshes
  document.querySelectorAll("[data-poll]").forEach((el) => {
    const every = Number(el.dataset.interval) || 5000;
    window.setInterval(async () => {
      if (document.hidden) return;
      try {
        const r = await fetchFragment(el.dataset.poll);
        if (r.ok) el.replaceChildren(parse(r.html));
      } catch (_err) {
        /* the next tick tries again */
      }
    }, every);
  });

  window.addEventListener("pageshow", (ev) => {
    if (!ev.persisted) return;
    document.querySelectorAll("[data-refresh]").forEach(async (el) => {
      try {
        const r = await fetchFragment(el.dataset.refresh);
        if (r.ok) el.replaceChildren(parse(r.html));
      } catch (_err) {
        /* keep what is shown */
      }
    });
  });

  // ------------------------------------------------------------- carousels
  document.addEventListener("click", (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest("button[data-scroll]") : null;
    if (!button) return;
    const list = button.closest(".row")?.querySelector(".cards");
    if (!list) return;
    list.scrollBy({
      left: Number(button.dataset.scroll) * list.clientWidth * 0.9,
      behavior: reduceMotion() ? "auto" : "smooth",
    });
  });
})();
