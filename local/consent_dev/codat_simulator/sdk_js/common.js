// What the Codat simulator's stand-ins for Codat's Link SDK (link.js) and Connections SDK (connections.js) share:
// calls to the simulator's SDK API with the company access token, Codat-like errors, and a small scoped UI kit.
// No network beyond the simulator that served this file: no fonts, no logos from Codat's CDN.

const API = new URL("/sdk/api/", import.meta.url);

export const SOURCE_TYPES = {
  Banking: "Bank accounts",
  Accounting: "Accounting software",
  Commerce: "Commerce and payments",
};

// A refusal or failure, carrying what the components pass to `onError`.
export class SdkError extends Error {
  constructor({ errorCode = null, correlationId = null, message, userRecoverable }) {
    super(message);
    this.errorCode = errorCode;
    this.correlationId = correlationId;
    this.userRecoverable = userRecoverable;
  }

  // The argument of `onError`, as Codat's components give it.
  get details() {
    return {
      correlationId: this.correlationId,
      message: this.message,
      errorCode: this.errorCode,
      userRecoverable: this.userRecoverable,
    };
  }
}

export async function call(accessToken, method, path, body) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${accessToken}` };
  const init = { method, headers, mode: "cors", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, API), init);
  } catch {
    throw new SdkError({ message: "Codat could not be reached.", userRecoverable: true });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new SdkError({
      errorCode: response.status,
      correlationId: data?.correlationId ?? null,
      message: data?.error || `Codat answered ${response.status}.`,
      // A refused token or request stays refused; an overloaded or failing Codat may answer the next try.
      userRecoverable: response.status === 429 || response.status >= 500,
    });
  }
  return data;
}

export function asSdkError(error) {
  return error instanceof SdkError
    ? error
    : new SdkError({ message: String(error?.message || error), userRecoverable: false });
}

export function segment(value) {
  return encodeURIComponent(String(value ?? ""));
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.includes("-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat(Infinity)) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

export function initials(name) {
  return name.split(/\s+/).map((word) => word[0]).join("").slice(0, 2).toUpperCase();
}

const STYLE = `
.codat-sdk { --codat-accent: #5b21b6; --codat-muted: #57606a; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1b1f24; background: #fff; display: grid; gap: 0.75rem; min-width: min(30rem, 85vw); }
.codat-sdk .codat-eyebrow { margin: 0; color: var(--codat-muted); font-size: 0.8rem; letter-spacing: 0.02em; }
.codat-sdk h2 { margin: 0; font-size: 1.3rem; line-height: 1.25; }
.codat-sdk h2:focus { outline: none; }
.codat-sdk h2:focus-visible { outline: 3px solid #bf5700; outline-offset: 2px; }
.codat-sdk h3 { margin: 0.5rem 0 0.25rem; font-size: 1rem; }
.codat-sdk p { margin: 0; }
.codat-sdk ul { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.4rem; }
.codat-sdk dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0; }
.codat-sdk dt { color: var(--codat-muted); } .codat-sdk dd { margin: 0; }
.codat-sdk button { font: inherit; font-weight: 600; border-radius: 6px; padding: 0.5rem 1rem; min-height: 2.5rem; cursor: pointer;
  border: 1px solid var(--codat-accent); background: #fff; color: var(--codat-accent); }
.codat-sdk button.codat-primary { background: var(--codat-accent); color: #fff; }
.codat-sdk button.codat-danger { background: #a40e26; border-color: #a40e26; color: #fff; }
.codat-sdk button:disabled { cursor: default; opacity: 0.7; }
.codat-sdk button:focus-visible { outline: 3px solid #bf5700; outline-offset: 2px; }
.codat-sdk .codat-option { width: 100%; display: flex; align-items: center; gap: 0.75rem; text-align: left; color: #1b1f24; border-color: #d0d7de; }
.codat-sdk .codat-option:hover:not(:disabled) { border-color: var(--codat-accent); background: #f5f3ff; }
.codat-sdk .codat-logo { width: 2rem; height: 2rem; border-radius: 6px; display: inline-grid; place-items: center; flex: none;
  background: #ede9fe; color: #3b0764; font-size: 0.75rem; font-weight: 700; }
.codat-sdk .codat-state { margin-left: auto; font-size: 0.85rem; font-weight: 400; color: var(--codat-muted); }
.codat-sdk .codat-actions { display: flex; gap: 0.5rem; flex-wrap: wrap; }
.codat-sdk .codat-note { color: var(--codat-muted); font-size: 0.85rem; }
.codat-sdk .codat-error { border: 1px solid #a40e26; background: #ffebe9; color: #6e0b1c; border-radius: 8px; padding: 0.75rem 1rem; }
.codat-sdk .codat-connection { border: 1px solid #d0d7de; border-radius: 8px; padding: 0.75rem 1rem; display: grid; gap: 0.4rem; }
`;

// The component's root inside `target`: its own styles, then the view it shows.
export function mount(target, eyebrow) {
  const root = el("div", { className: "codat-sdk" });
  root.append(el("style", {}, STYLE));
  const view = el("div", { className: "codat-view", style: "display: grid; gap: 0.75rem" });
  root.append(el("p", { className: "codat-eyebrow" }, eyebrow), view);
  target.replaceChildren(root);
  return {
    root,
    // Shows `nodes`, and moves the focus to their heading (or first control), so keyboard and screen reader users
    // follow each step.
    show(...nodes) {
      view.replaceChildren(...nodes.flat(Infinity).filter((node) => node !== null && node !== undefined && node !== false));
      view.setAttribute("aria-busy", "false");
      const heading = view.querySelector("h2");
      if (heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
    },
    busy(message) {
      view.replaceChildren(el("h2", { tabIndex: -1 }, message));
      view.setAttribute("aria-busy", "true");
      view.querySelector("h2").focus();
    },
  };
}

export function errorView(error, closeLabel, onDismiss) {
  return [
    el("h2", {}, "Something went wrong"),
    el("div", { className: "codat-error", role: "alert" },
      el("p", {}, error.message),
      error.correlationId ? el("p", { className: "codat-note" }, `Reference: ${error.correlationId}`) : null),
    el("div", { className: "codat-actions" }, el("button", { type: "button", onclick: onDismiss }, closeLabel)),
  ];
}
