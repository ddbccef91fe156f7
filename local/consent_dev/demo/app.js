// The demo bank app: a customer's consent journey through the public API only (Option 2 of Codat's guide,
// "fully embedded"). Signing in asks `make dev`'s local issuer for the customer's token (the bank's identity
// provider in production); every call sends it, and the local JWT authorizer checks it as API Gateway would.

const POLL_MS = 2000; // GET /companies/{id} is served from DynamoDB: polling costs no Codat quota

const JOURNEYS = {
  onboarding: "Business onboarding",
  loan_application: "Loan application",
};
const SOURCE_TYPES = {
  banking: { title: "Bank accounts", noun: "bank" },
  accounting: { title: "Accounting software", noun: "accounting software" },
  commerce: { title: "Commerce and payments", noun: "commerce platform" },
};
const JOURNEY_STATUS = {
  pending: ["Not started", "Connect the software marked required below."],
  linking: ["Waiting for you", "Authorize access on Codat's page to continue."],
  linked: ["Connected — reading your data", "Codat is fetching your data for the first time."],
  complete: ["Complete", "Everything the bank needs is connected and up to date."],
  action_required: ["Action required", "A connection this journey needs was revoked or lost: connect it again."],
};
const EVENT_LABELS = {
  "company.created": "Company created",
  "company.erased": "Company erased",
  "journey.started": "Journey started",
  "journey.linked": "Journey: everything connected",
  "journey.completed": "Journey complete",
  "journey.action_required": "Journey needs your action",
  "connection.created": "Connection started",
  "connection.link_requested": "New authorization link issued",
  "connection.linked": "Access authorized",
  "connection.failed": "Authorization not completed",
  "connection.unlinked": "Access revoked",
  "connection.deauthorized": "Access withdrawn at the provider",
  "connection.deleted": "Connection deleted",
  "connection.expired": "Authorization link expired",
  "connection.status_observed": "Status checked with Codat",
  "codat.connection.created": "Codat confirmed the connection",
  "consent.revoked": "You revoked access",
  "sync.completed": "Data synced",
};

const $ = (selector) => document.querySelector(selector);

const state = {
  customer: null,
  token: null,
  company: null,
  integrations: null,
  freshLinks: new Map(), // connectionId → a linkUrl this session asked for and has not opened yet
  seen: new Map(), // what was last announced, so only changes are read out
  pollTimer: null,
  busy: false,
};

// -- the API ------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function api(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", Authorization: `Bearer ${state.token}`, ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { detail: "The bank's server cannot be reached. Is `make dev` still running?" });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function newIdempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// -- messages -----------------------------------------------------------------------------------------------

function showError(error) {
  const box = $("#error");
  box.replaceChildren();
  if (!error) {
    box.hidden = true;
    return;
  }
  const title = el("strong", {}, error.problem?.title || "Something went wrong");
  box.append(title, el("p", {}, error.message));
  for (const item of error.problem?.errors || []) {
    box.append(el("p", { className: "small" }, `${item.field}: ${item.message}`));
  }
  box.hidden = false;
}

function announce(message) {
  const region = $("#announcer");
  region.textContent = "";
  // A fresh text node after a tick, so screen readers read the same message again.
  setTimeout(() => (region.textContent = message), 50);
}

async function run(action) {
  if (state.busy) return;
  state.busy = true;
  showError(null);
  try {
    await action();
  } catch (error) {
    console.error(error);
    showError(error instanceof ApiError ? error : new ApiError(0, { detail: String(error) }));
  } finally {
    state.busy = false;
  }
}

// -- DOM helpers --------------------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.includes("-")) node.setAttribute(key, value); // aria-*: attributes, not properties
    else node[key] = value;
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) : "";
}

function show(section) {
  for (const id of ["signin", "start", "company"]) $(`#${id}`).hidden = id !== section;
}

function logo(integration) {
  const initials = integration.name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase();
  const badge = el("span", { className: "logo", "aria-hidden": "true" }, el("span", { className: "initials" }, initials));
  if (integration.logoUrl) {
    const img = el("img", { src: integration.logoUrl, alt: "", loading: "lazy", width: 32, height: 32 });
    img.addEventListener("load", () => badge.classList.add("has-image"));
    img.addEventListener("error", () => img.remove()); // offline: the initials stay
    badge.append(img);
  }
  return badge;
}

// -- sign in and companies ----------------------------------------------------------------------------------

async function signIn(customer) {
  // The local issuer's token for this customer (dev only: no password).
  const issued = await fetch("/dev/token", { method: "POST", body: new URLSearchParams({ customer }) });
  if (!issued.ok) throw new ApiError(issued.status, await issued.json().catch(() => null));
  state.token = (await issued.json()).accessToken;
  state.customer = customer;
  sessionStorage.setItem("demo.customer", customer);
  $("#session-customer").textContent = customer;
  $("#session").hidden = false;
  await showStart();
}

function signOut() {
  stopPolling();
  state.customer = state.token = state.company = null;
  sessionStorage.removeItem("demo.customer");
  $("#session").hidden = true;
  showError(null);
  show("signin");
  $("#customer-id").focus();
}

async function showStart() {
  stopPolling();
  state.company = null;
  // Shown once the list is in: a click on the form while the app is still busy would be dropped.
  const { items } = await api("GET", "/companies?limit=20");
  show("start");
  const list = $("#company-list");
  list.replaceChildren(
    ...items.map((company) =>
      el(
        "li",
        {},
        el("button", { type: "button", className: "link-button", onclick: () => run(() => openCompany(company.companyId)) }, company.name),
        el("span", { className: "muted small" }, ` · ${company.journeys.map((j) => JOURNEYS[j.journey] || j.journey).join(", ")} · ${when(company.createdAt)}`),
      ),
    ),
  );
  $("#companies").hidden = items.length === 0;
  $("#company-name").focus();
}

async function createCompany(form) {
  const data = new FormData(form);
  const company = await api("POST", "/companies", {
    body: { name: data.get("name").trim(), journey: data.get("journey") },
    headers: { "Idempotency-Key": newIdempotencyKey() },
  });
  form.reset();
  announce(`${company.name} created.`);
  await openCompany(company.companyId, company);
}

async function openCompany(companyId, known) {
  state.seen.clear();
  state.freshLinks.clear();
  $("#history").hidden = true;
  $("#load-history").textContent = "Show history";
  $("#load-history").setAttribute("aria-expanded", "false");
  renderCompany(known || (await api("GET", `/companies/${encodeURIComponent(companyId)}`)));
  show("company");
  $("#company-title").focus();
  if (!state.integrations) state.integrations = (await api("GET", "/integrations")).items;
  renderIntegrations();
  startPolling();
}

// -- live status --------------------------------------------------------------------------------------------

function startPolling() {
  stopPolling();
  const tick = async () => {
    if (!state.company) return;
    try {
      const company = await api("GET", `/companies/${encodeURIComponent(state.company.companyId)}`);
      if (state.company && company.companyId === state.company.companyId) renderCompany(company);
    } catch (error) {
      if (error.status === 404) {
        showError(new ApiError(404, { title: "This company is gone", detail: "It was erased or does not belong to you." }));
        return showStart();
      }
      $("#checked-at").textContent = "failed, retrying";
    }
    state.pollTimer = setTimeout(tick, POLL_MS);
  };
  state.pollTimer = setTimeout(tick, POLL_MS);
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

function connectionMessage(connection) {
  const name = connection.platformName;
  switch (connection.status) {
    case "Linked":
      return connection.lastSyncAt
        ? ["ok", "Connected", `Data last synced ${when(connection.lastSyncAt)}.`]
        : ["progress", "Connected", "Reading your data for the first time…"];
    case "PendingAuth":
      return connection.statusReason
        ? ["warn", "Not authorized", `Authorization at ${name} did not complete: ${connection.statusReason}. Try again when you are ready.`]
        : ["progress", "Waiting for you", `Authorize access to ${name} on Codat's page.`];
    case "Unlinked":
      return ["warn", "Access revoked", "You revoked the bank's access. Your data stays with you; re-authorize to share it again."];
    case "Deauthorized":
      return ["warn", "Access lost", `${name} withdrew access (the authorization was revoked or expired there). Re-authorize to reconnect.`];
    default:
      return ["warn", connection.status, connection.statusReason || ""];
  }
}

function renderCompany(company) {
  const changes = [];
  state.company = company;
  $("#company-title").textContent = company.name;
  $("#company-id").textContent = company.companyId;
  $("#erase-name").textContent = company.name;
  $("#checked-at").textContent = new Date().toLocaleTimeString();

  $("#journeys").replaceChildren(
    ...company.journeys.map((journey) => {
      const [label, advice] = JOURNEY_STATUS[journey.status] || [journey.status, ""];
      const title = JOURNEYS[journey.journey] || journey.journey;
      noteChange(changes, `journey:${journey.journey}`, journey.status, `${title}: ${label}.`);
      return el(
        "article",
        { className: `journey status-${journey.status}`, "aria-label": title },
        el("div", { className: "row" }, el("h3", {}, title), el("span", { className: "badge", dataset: { status: journey.status } }, label)),
        el("p", { className: "small" }, advice),
        el(
          "ul",
          { className: "plain requirements" },
          journey.requirements.map((r) =>
            el(
              "li",
              { className: r.satisfied ? "done" : "" },
              el("span", { "aria-hidden": "true", className: "tick" }, r.satisfied ? "✓" : "○"),
              ` ${SOURCE_TYPES[r.sourceType]?.title || r.sourceType} `,
              el("span", { className: "muted small" }, `${r.required ? "required" : "optional"} · ${r.satisfied ? "done" : "not yet"}`),
            ),
          ),
        ),
      );
    }),
  );

  const list = $("#connections");
  $("#no-connections").hidden = company.connections.length > 0;
  list.replaceChildren(
    ...company.connections.map((connection) => {
      const [tone, label, message] = connectionMessage(connection);
      noteChange(changes, `connection:${connection.connectionId}`, `${connection.status}|${connection.statusReason || ""}|${Boolean(connection.lastSyncAt)}`, `${connection.platformName}: ${label}. ${message}`);
      if (connection.status === "Linked") state.freshLinks.delete(connection.connectionId);
      return el(
        "li",
        { className: `connection tone-${tone}`, dataset: { connectionId: connection.connectionId, status: connection.status } },
        el("div", { className: "row" }, logo({ name: connection.platformName, logoUrl: logoFor(connection.platformKey) }),
          el("div", { className: "grow" }, el("h3", {}, connection.platformName), el("p", { className: "muted small" }, SOURCE_TYPES[connection.sourceType]?.title || connection.sourceType)),
          el("span", { className: "badge", dataset: { status: connection.status } }, label)),
        el("p", { className: "message" }, message),
        el("div", { className: "actions" }, connectionActions(connection)),
      );
    }),
  );
  if (changes.length) announce(changes.join(" "));
}

function noteChange(changes, key, value, message) {
  const before = state.seen.get(key);
  state.seen.set(key, value);
  if (before !== undefined && before !== value) changes.push(message);
}

function logoFor(platformKey) {
  return state.integrations?.find((i) => i.platformKey === platformKey)?.logoUrl || "";
}

function connectionActions(connection) {
  const name = connection.platformName;
  if (connection.status === "Linked") {
    return [el("button", { type: "button", className: "secondary", onclick: () => run(() => revoke(connection)) }, `Revoke access to ${name}`)];
  }
  const fresh = state.freshLinks.get(connection.connectionId);
  if (fresh) {
    const link = el("a", { href: fresh, target: "_blank", rel: "noopener", className: "button primary" }, `Authorize ${name} at Codat`, el("span", { className: "visually-hidden" }, " (opens in a new tab)"), el("span", { "aria-hidden": "true" }, " ↗"));
    link.addEventListener("click", () => {
      state.freshLinks.delete(connection.connectionId); // each link works once
      setTimeout(() => renderCompany(state.company), 0);
      announce(`Codat's page for ${name} opened in a new tab. This page updates when you are done.`);
    });
    return [link];
  }
  const verb = connection.status === "PendingAuth" && !connection.statusReason ? "Get a new link for" : "Re-authorize";
  return [el("button", { type: "button", className: "primary", onclick: () => run(() => connect(connection.platformKey)) }, `${verb} ${name}`)];
}

function renderIntegrations() {
  const company = state.company;
  const roles = new Map(); // sourceType → journeys that require it / allow it
  for (const journey of company.journeys) {
    for (const r of journey.requirements) {
      const role = roles.get(r.sourceType) || { required: [], optional: [] };
      role[r.required ? "required" : "optional"].push(JOURNEYS[journey.journey] || journey.journey);
      roles.set(r.sourceType, role);
    }
  }
  const order = [...roles.keys()].sort((a, b) => (roles.get(b).required.length > 0) - (roles.get(a).required.length > 0));
  $("#integrations").replaceChildren(
    ...order.map((sourceType) => {
      const role = roles.get(sourceType);
      const items = state.integrations.filter((i) => i.sourceType === sourceType);
      const headingId = `type-${sourceType}`;
      return el(
        "section",
        { className: "source-type", "aria-labelledby": headingId },
        el("h3", { id: headingId }, SOURCE_TYPES[sourceType]?.title || sourceType, " ",
          role.required.length
            ? el("span", { className: "badge required" }, "Required")
            : el("span", { className: "badge optional" }, "Optional")),
        el("p", { className: "muted small" }, role.required.length ? `Needed for ${role.required.join(" and ")}.` : `Helps your ${role.optional.join(" and ")}, if you have one.`),
        el(
          "ul",
          { className: "plain tiles" },
          items.map((integration) =>
            el("li", {}, el("button", { type: "button", className: "tile", onclick: () => run(() => connect(integration.platformKey)) },
              logo(integration), el("span", {}, integration.name), el("span", { className: "visually-hidden" }, ` — connect ${SOURCE_TYPES[sourceType]?.noun || sourceType}`))),
          ),
        ),
      );
    }),
  );
}

// -- actions ------------------------------------------------------------------------------------------------

async function connect(platformKey) {
  const companyId = state.company.companyId;
  const connection = await api("POST", `/companies/${encodeURIComponent(companyId)}/connections`, { body: { platformKey } });
  if (connection.linkUrl) state.freshLinks.set(connection.connectionId, connection.linkUrl);
  renderCompany(await api("GET", `/companies/${encodeURIComponent(companyId)}`));
  announce(`${connection.platformName}: a link is ready. Choose "Authorize ${connection.platformName} at Codat" to continue.`);
  document.querySelector(`[data-connection-id="${connection.connectionId}"] .actions a, [data-connection-id="${connection.connectionId}"] .actions button`)?.focus();
}

async function revoke(connection) {
  const companyId = state.company.companyId;
  await api("DELETE", `/companies/${encodeURIComponent(companyId)}/connections/${encodeURIComponent(connection.connectionId)}`);
  renderCompany(await api("GET", `/companies/${encodeURIComponent(companyId)}`));
}

async function loadHistory() {
  const list = $("#history");
  const path = `/companies/${encodeURIComponent(state.company.companyId)}/events`;
  const entries = [];
  let cursor = null;
  do {
    const page = await api("GET", `${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    entries.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && entries.length < 500);
  list.replaceChildren(
    ...entries.map((entry) =>
      el("li", {},
        el("time", { dateTime: entry.at }, when(entry.at)),
        el("span", { className: "event" }, EVENT_LABELS[entry.type] || entry.type),
        el("span", { className: "muted small" }, [entry.platformKey && platformName(entry.platformKey), entry.journey && JOURNEYS[entry.journey], entry.detail, entry.actor.startsWith("customer:") ? "by you" : `by ${entry.actor}`].filter(Boolean).join(" · ")),
      ),
    ),
  );
  list.hidden = false;
  $("#load-history").textContent = "Refresh history";
  $("#load-history").setAttribute("aria-expanded", "true");
  announce(`${entries.length} entries in the consent history.`);
}

function platformName(platformKey) {
  return state.integrations?.find((i) => i.platformKey === platformKey)?.name || platformKey;
}

function askErase() {
  const dialog = $("#erase-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

async function erase() {
  const { companyId, name } = state.company;
  stopPolling();
  await api("DELETE", `/companies/${encodeURIComponent(companyId)}`);
  await showStart();
  announce(`${name} was erased.`);
}

// -- wiring -------------------------------------------------------------------------------------------------

$("#signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const customer = $("#customer-id").value.trim();
  if (customer) run(() => signIn(customer));
});
$("#company-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(() => createCompany(event.target));
});
$("#sign-out").addEventListener("click", signOut);
$("#back").addEventListener("click", () => run(showStart));
$("#load-history").addEventListener("click", () => run(loadHistory));
$("#erase").addEventListener("click", askErase);
$("#erase-dialog").addEventListener("close", (event) => {
  if (event.target.returnValue === "erase") run(erase);
  else $("#erase").focus();
});

const remembered = sessionStorage.getItem("demo.customer");
if (remembered) run(() => signIn(remembered));
else $("#customer-id").focus();
