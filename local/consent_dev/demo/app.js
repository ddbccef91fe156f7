// The demo bank app: a customer's consent journey through the public API only, both ways Codat's guide offers:
// Option 2, Codat's hosted link (a new tab), and Option 1, Codat's Link SDK mounted inside this page (the module
// URL comes from /demo/config.json: Codat's own against a real Codat, the simulator's stand-in otherwise).
// Signing in asks `make dev`'s local issuer for the customer's token (the bank's identity provider in
// production); every call sends it, and the local JWT authorizer checks it as API Gateway would.
// Whichever way she connects, a connection's status comes from Codat's webhooks (the page polls the API): what the
// SDK's callbacks say is a hint for the page, never evidence of consent.
// A Linked connection's consent clock (`renewBy`) is shown as the API gives it, never guessed; from its reminder
// window on, the customer renews it through a fresh link. Under `make dev` (and only there: `/_dev/clock` answers)
// the page reads the stack's moved time, and a panel moves it on and runs the reminders, to rehearse the lifecycle.
// A one-off journey (a credit check) says so where it is chosen: access ends once the data is read, and the data is
// deleted some days later. Whether that happened only the history says (`consent.fulfilled`, `data.purged`): the page
// reads it when the company's state changes, and then offers nothing that would be refused or undone.

const POLL_MS = 2000; // GET /companies/{id} is served from DynamoDB: polling costs no Codat quota
// The version of the data-sharing terms the customer accepts by connecting: recorded with her consent.
const CONSENT_VERSION = "2026-01";
// A Linked connection can be renewed from its first reminder on: 14 days before its `renewBy` (the API's default
// policy). A deployment that opens renewal later answers 409, and the page shows why.
const RENEWAL_WINDOW_DAYS = 14;
const DAY_MS = 86_400_000;
// `make dev`'s own routes (never deployed): the stack's clock, and the scheduled function that sends reminders.
const DEV_CLOCK_PATH = "/_dev/clock";
const DEV_REMINDERS_PATH = "/_dev/schedules/LifecycleFunction";

const SOURCE_TYPES = {
  banking: { title: "Bank accounts", noun: "bank" },
  accounting: { title: "Accounting software", noun: "accounting software" },
  commerce: { title: "Commerce and payments", noun: "commerce platform" },
};
const JOURNEY_STATUS = {
  pending: "Not started",
  linking: "In progress",
  linked: "Connected — reading your data",
  complete: "Complete",
  action_required: "Action required",
  done: "Done", // the page's own: a one-off journey whose data was read (its access ended by design)
};
// What the customer reads for a refused request, by the problem's stable `code` (the detail is for developers).
const PROBLEM_MESSAGES = {
  connection_already_linked: "This software is already connected.",
  accounting_already_linked: "Only one accounting package can be connected at a time: revoke the connected one first.",
  source_type_not_in_journeys: "This kind of software is not part of what you applied for.",
  validation_failed: "Please check what you entered.",
  not_found: "This company no longer exists: it was erased or does not belong to you.",
  company_data_purged: "This company's data was deleted at Codat once the bank no longer needed it. To connect again, start a new company.",
};
// Codat's data types in the customer's words; any other shows Codat's own name.
const DATA_TYPE_NAMES = {
  balanceSheet: "Balance sheet",
  profitAndLoss: "Profit and loss",
  cashFlowStatement: "Cash flow statement",
  chartOfAccounts: "Chart of accounts",
  company: "Company details",
  invoices: "Invoices",
  bills: "Bills",
  customers: "Customers",
  suppliers: "Suppliers",
  bankAccounts: "Bank accounts (in your accounting software)",
  bankTransactions: "Bank transactions (in your accounting software)",
  "banking-accounts": "Bank accounts",
  "banking-accountBalances": "Bank balances",
  "banking-transactions": "Bank transactions",
  "banking-transactionCategories": "Bank transaction categories",
  "commerce-orders": "Shop orders",
  "commerce-payments": "Shop payments",
  "commerce-transactions": "Shop transactions",
  "commerce-customers": "Shop customers",
  "commerce-companyInfo": "Shop details",
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
  "connection.expiring": "Reminder: renew your consent",
  "connection.renewed": "You renewed access",
  "connection.status_observed": "Status checked with Codat",
  "codat.connection.created": "Codat confirmed the connection",
  "codat.connection.unlinked": "Codat confirmed access was revoked",
  "codat.connection.deleted": "Codat confirmed the connection was deleted",
  "consent.revoked": "You revoked access",
  "consent.withdrawn": "You cancelled the connection before authorizing it",
  "sync.completed": "Data synced",
};

const $ = (selector) => document.querySelector(selector);

const state = {
  customer: null,
  token: null,
  company: null,
  integrations: null,
  journeys: null, // name → the journey's definition, from GET /journeys
  tilesKey: null, // what the tiles were last drawn from, so a poll redraws them only when something changed
  freshLinks: new Map(), // connectionId → { url, renewal, renewBy }: a link this session asked for, not opened yet
  seen: new Map(), // what was last announced, so only changes are read out
  pollTimer: null,
  busy: false,
  config: null, // GET /demo/config.json: where Codat's front-end SDKs are loaded from
  mode: "hosted", // how the customer connects: "hosted" (Codat's page) or "sdk" (Codat's Link inside this page)
  confirming: new Set(), // connections Codat's Link reported (onConnection) that its webhooks have not confirmed yet
  sdk: null, // the SDK component on screen: { kind, origin, connected }
  devClock: null, // make dev's clock { offsetMs, offsetSeconds, now }; null: the browser's own time
  devClockRoute: "unknown", // "present" (make dev), "absent" (a deployed API), "unknown" (not asked, or starting)
  endings: null, // what the history says ended consent or deleted data by design (see readEndings), for this company
  endingsKey: null, // the company's state the endings were read for: read again when it changes
};

// -- the API ------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(PROBLEM_MESSAGES[problem?.code] || problem?.detail || problem?.title || `The server answered ${status}.`);
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
    setOffline(true);
    throw new ApiError(0, { title: "The bank's server cannot be reached", detail: "Please try again in a moment." });
  }
  setOffline(false);
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

function fillError(box, error) {
  box.replaceChildren(el("strong", {}, error.problem?.title || "Something went wrong"), el("p", {}, error.message));
  for (const item of error.problem?.errors || []) {
    box.append(el("p", { className: "small" }, `${item.field}: ${item.message}`));
  }
}

function clearErrors() {
  $("#error").hidden = true;
  $("#error").replaceChildren();
  for (const box of document.querySelectorAll(".inline-error")) box.remove();
}

// An error goes where the customer is looking: right after the control that failed, and focus moves to it.
function showError(error, origin) {
  clearErrors();
  if (!error) return;
  const anchor = origin?.isConnected ? origin.closest(".actions, .tiles, form, .company-head") || origin : null;
  const box = anchor ? el("div", { className: "error inline-error", role: "alert", tabIndex: -1 }) : $("#error");
  fillError(box, error);
  if (anchor) anchor.after(box);
  box.hidden = false;
  if (anchor) box.focus();
}

function showNotice(message) {
  const box = $("#notice");
  box.textContent = message;
  box.hidden = !message;
  if (message) box.focus();
}

function setOffline(offline) {
  $("#offline").hidden = !offline;
}

function announce(message) {
  const region = $("#announcer");
  region.textContent = "";
  // A fresh text node after a tick, so screen readers read the same message again.
  setTimeout(() => (region.textContent = message), 50);
}

// One action at a time; the control that started it shows it is busy until the answer is in.
async function run(action, origin) {
  if (state.busy) return;
  state.busy = true;
  showError(null);
  showNotice("");
  const button = origin?.closest?.("button");
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
  document.body.setAttribute("aria-busy", "true");
  try {
    await action();
  } catch (error) {
    console.error(error);
    showError(error instanceof ApiError ? error : new ApiError(0, { detail: String(error) }), origin);
  } finally {
    state.busy = false;
    document.body.removeAttribute("aria-busy");
    if (button?.isConnected) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
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

// A day as the customer reads it ("28 Feb 2027" in en-GB), in her time zone.
function day(iso) {
  return iso ? new Date(iso).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" }) : "";
}

// Now, for the consent clock: the stack's moved time under `make dev`, the browser's own elsewhere.
function nowMs() {
  return Date.now() + (state.devClock?.offsetMs || 0);
}

// Whether a Linked connection can be renewed now (its reminder window has opened). Unknown clock: never.
function renewalOpen(connection) {
  if (connection.status !== "Linked" || !connection.renewBy) return false;
  const renewBy = Date.parse(connection.renewBy);
  return !Number.isNaN(renewBy) && nowMs() >= renewBy - RENEWAL_WINDOW_DAYS * DAY_MS;
}

function renewByText(connection) {
  return `Renew by ${day(connection.renewBy)}`;
}

function show(section) {
  for (const id of ["signin", "start", "company"]) $(`#${id}`).hidden = id !== section;
}

function journeyTitle(name) {
  return state.journeys?.get(name)?.title || name;
}

function sourceTitle(sourceType) {
  return SOURCE_TYPES[sourceType]?.title || sourceType;
}

function sourceNoun(sourceType) {
  return SOURCE_TYPES[sourceType]?.noun || sourceType;
}

// Only a logo served from this page's own origin is loaded: the demo works offline and calls no CDN. Every
// other integration gets its initials on a colour picked from its name.
function servedLocally(url) {
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

function logo(integration) {
  const initials = integration.name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase();
  const hue = [...integration.name].reduce((sum, c) => (sum * 31 + c.charCodeAt(0)) % 360, 7);
  const badge = el("span", { className: "logo", "aria-hidden": "true" }, el("span", { className: "initials" }, initials));
  badge.style.setProperty("--logo-hue", String(hue));
  if (integration.logoUrl && servedLocally(integration.logoUrl)) {
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
  $("#session-customer").textContent = "";
  showError(null);
  showNotice("");
  show("signin");
  $("#customer-id").focus();
}

// The journeys the bank offers come from its configuration (GET /journeys), not from this page.
async function loadJourneys() {
  if (state.journeys) return;
  const { items } = await api("GET", "/journeys");
  state.journeys = new Map(items.map((journey) => [journey.name, journey]));
  const asks = (types) => types.map((t) => sourceNoun(t)).join(" and ");
  $("#journey-choice").replaceChildren(
    el("legend", {}, "What would you like to do?"),
    ...items.map((journey, index) => {
      const id = `journey-${journey.name}`;
      return el(
        "div",
        { className: "choice" },
        el("input", { type: "radio", name: "journey", value: journey.name, id, checked: index === 0, defaultChecked: index === 0, required: true, "aria-describedby": `${id}-about` }),
        el(
          "div",
          {},
          el("label", { htmlFor: id }, journey.title),
          el(
            "p",
            { id: `${id}-about`, className: "hint" },
            journey.description,
            el("br"),
            `You connect: your ${asks(journey.required)}`,
            journey.optional.length ? ` (and, if you wish, your ${asks(journey.optional)}).` : ".",
            accessWords(journey) ? [el("br"), accessWords(journey)] : null,
          ),
        ),
      );
    }),
  );
}

// How long access and the data last, in her words: "One-off: access ends once your data is read; it is deleted 30
// days later." Nothing for a journey whose access lasts until revoked and whose data is kept.
function accessWords(journey) {
  const days = journey.retainDays;
  const later = Number.isInteger(days) ? `${days} ${days === 1 ? "day" : "days"} later` : null;
  if (journey.access === "one_off") return `One-off: access ends once your data is read${later ? `; it is deleted ${later}` : ""}.`;
  return later ? `Once access ends, your data is deleted ${later}.` : "";
}

function isOneOff(name) {
  return state.journeys?.get(name)?.access === "one_off";
}

function retainDaysOf(name) {
  const days = state.journeys?.get(name)?.retainDays;
  return Number.isInteger(days) ? days : null;
}

// A title inside a sentence: "for the credit check".
function inSentence(title) {
  return title ? title[0].toLowerCase() + title.slice(1) : title;
}

function companyStatus(company) {
  return company.journeys.map((j) => `${journeyTitle(j.journey)}: ${JOURNEY_STATUS[j.status] || j.status}`).join(" · ");
}

async function showStart() {
  stopPolling();
  state.company = null;
  // Shown once the list is in: a click on the form while the app is still busy would be dropped.
  await loadJourneys();
  const { items } = await api("GET", "/companies?limit=20");
  show("start");
  const list = $("#company-list");
  list.replaceChildren(
    ...items.map((company) =>
      el(
        "li",
        {},
        el("button", { type: "button", className: "link-button", onclick: (event) => run(() => openCompany(company.companyId), event.currentTarget) }, company.name),
        el("span", { className: "muted small" }, ` · ${companyStatus(company)} · started ${when(company.createdAt)}`),
      ),
    ),
  );
  // A returning customer sees her companies first; a new one the form.
  $("#companies").hidden = items.length === 0;
  $("#new-company-title").textContent = items.length ? "Or start something new" : "Start here";
  if (items.length) $("#companies-title").focus();
  else $("#company-name").focus();
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
  state.confirming.clear();
  state.tilesKey = null;
  state.endings = state.endingsKey = null;
  $("#history").hidden = true;
  $("#load-history").textContent = "Show history";
  $("#load-history").setAttribute("aria-expanded", "false");
  const company = known || (await api("GET", `/companies/${encodeURIComponent(companyId)}`));
  if (!state.integrations) state.integrations = (await api("GET", "/integrations")).items;
  await readEndings(company);
  renderCompany(company);
  show("company");
  $("#company-title").focus();
  startPolling();
}

// -- live status --------------------------------------------------------------------------------------------

function startPolling() {
  stopPolling();
  const tick = async () => {
    if (!state.company) return;
    if (state.devClockRoute !== "absent") await loadDevClock();
    try {
      const company = await api("GET", `/companies/${encodeURIComponent(state.company.companyId)}`);
      await readEndings(company);
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
  if (isFulfilled(connection)) {
    const journey = usedJourneyFor(connection.sourceType);
    const days = journey && retainDaysOf(journey.journey);
    const purpose = journey ? ` for the ${inSentence(journeyTitle(journey.journey))}` : "";
    const kept = days ? ` The data read is deleted ${days} days after access ended.` : "";
    return ["done", "Access ended", `Your one-off consent was used: the bank read your data${purpose}, and its access to ${name} ended as you agreed.${kept}`];
  }
  switch (connection.status) {
    case "Linked":
      return connection.lastSyncAt
        ? ["ok", "Connected", `Data last synced ${when(connection.lastSyncAt)}.`]
        : ["progress", "Connected", "Reading your data for the first time…"];
    case "PendingAuth":
      return connection.statusReason
        ? ["warn", "Not authorized", `Authorization at ${name} did not complete: ${connection.statusReason}. Try again when you are ready.`]
        : ["progress", "Waiting for you", `Authorize access to ${name} ${whereToAuthorize()}.`];
    case "Unlinked":
      return ["warn", "Access revoked", `You withdrew the bank's access to ${name}, and the bank's systems were told. Re-authorize to share it again.`];
    case "Deauthorized":
      return ["warn", "Access lost", `${name} withdrew access (the authorization was revoked or expired there). Re-authorize to reconnect.`];
    default:
      return ["warn", connection.status, connection.statusReason || ""];
  }
}

// What is next for this journey, in the customer's words: how far along it is and the one thing to do now.
function journeyAdvice(journey, connections) {
  if (isUsed(journey)) {
    return usesLinked(journey, connections)
      ? "The bank has read what it needed. Access ends shortly, as you agreed."
      : "The bank read what it needed, and access ended as you agreed: nothing more to connect.";
  }
  const required = journey.requirements.filter((r) => r.required);
  const done = required.filter((r) => r.satisfied).length;
  const next = required.find((r) => !r.satisfied);
  // With data of its own, whether that data is up to date is the journey's data line's to say.
  if (journey.status === "complete") return journey.data ? "Everything the bank needs is connected." : "Everything the bank needs is connected and up to date.";
  if (!next) return "Everything the bank needs is connected. Codat is reading your data for the first time.";
  const lost = connections.find((c) => c.sourceType === next.sourceType && ["Unlinked", "Deauthorized"].includes(c.status));
  const waiting = connections.find((c) => c.sourceType === next.sourceType && c.status === "PendingAuth" && !c.statusReason);
  const todo = waiting
    ? `now authorize access to ${waiting.platformName} ${whereToAuthorize()}`
    : lost
      ? `connect your ${sourceNoun(next.sourceType)} again`
      : `now connect your ${sourceNoun(next.sourceType)}`;
  if (journey.status === "action_required" && lost) {
    return `Your ${sourceNoun(next.sourceType)} is no longer connected: ${todo}.`;
  }
  const progress = required.length > 1 ? `${done} of ${required.length} connected — ` : "";
  const sentence = `${progress}${todo}.`;
  return sentence[0].toUpperCase() + sentence.slice(1);
}

function whereToAuthorize() {
  return state.mode === "sdk" ? "in Codat's window on this page" : "on Codat's page";
}

async function showCompany(companyId) {
  const company = await api("GET", `/companies/${encodeURIComponent(companyId)}`);
  await readEndings(company);
  renderCompany(company);
}

// -- consent ended by design: a one-off consent used, data deleted when its retention ran out ------------------

// Only the history says why a connection is Unlinked, or that the company was deleted at Codat: it is read (before
// the company is drawn, so nothing wrong shows meanwhile) for a company with a one-off journey or one whose data is
// deleted after a while, and again only when the company's state changed.
async function readEndings(company) {
  const matters = company.journeys.some((j) => isOneOff(j.journey) || retainDaysOf(j.journey) !== null);
  if (!matters) {
    state.endings = state.endingsKey = null;
    return;
  }
  const key = JSON.stringify([
    company.companyId,
    company.journeys.map((j) => [j.journey, j.status, j.data?.status]),
    company.connections.map((c) => [c.connectionId, c.status, Boolean(c.lastSyncAt)]),
  ]);
  if (key === state.endingsKey) return;
  try {
    const entries = await historyEntries(company.companyId);
    state.endings = {
      // One-off journeys whose data was read once: what they were for is done (their access ends, or has ended).
      used: new Set(entries.filter((e) => e.type === "journey.data_ready" && isOneOff(e.journey)).map((e) => e.journey)),
      fulfilled: new Set(entries.filter((e) => e.type === "consent.fulfilled").map((e) => e.connectionId)),
      companyPurged: entries.some((e) => e.type === "data.purged" && !e.connectionId),
    };
    state.endingsKey = key;
  } catch (error) {
    console.error(error); // drawn from what was known; the next poll reads it again
  }
}

function isUsed(journey) {
  return Boolean(isOneOff(journey.journey) && state.endings?.used.has(journey.journey));
}

// Whether a Linked connection still gives the journey access.
function usesLinked(journey, connections) {
  const uses = new Set(journey.requirements.map((r) => r.sourceType));
  return connections.some((c) => c.status === "Linked" && uses.has(c.sourceType));
}

// Unlinked because her one-off consent was used (not revoked by her).
function isFulfilled(connection) {
  return connection.status === "Unlinked" && Boolean(state.endings?.fulfilled.has(connection.connectionId));
}

// The company's used one-off journey that read this source type.
function usedJourneyFor(sourceType) {
  return state.company?.journeys.find((j) => isUsed(j) && j.requirements.some((r) => r.sourceType === sourceType)) || null;
}

// Why nothing can be connected any more: the company was deleted at Codat (the API refuses a connection), or each of
// its journeys was a one-off whose data was read (a new connection would be unlinked again at once). Null: go on.
function nothingToConnect(company) {
  if (state.endings?.companyPurged) {
    return "Nothing left to connect: this company's data was deleted at Codat once the bank no longer needed it, and the company with it. To share your data again, start a new company.";
  }
  if (company.journeys.length && company.journeys.every(isUsed)) {
    return "Nothing more to connect: the bank read what it needed, and access ends as you agreed.";
  }
  return null;
}

// A used one-off journey's data, once its access ended: read, then deleted (when the company was).
function usedDataState(journey) {
  if (state.endings?.companyPurged) {
    return { tone: "ok", key: "deleted", words: "deleted at Codat", hint: "Your consent history stays here." };
  }
  const days = retainDaysOf(journey.journey);
  const hint = days ? `It is deleted at Codat ${days} days after access ended.` : "";
  return { tone: "ok", key: "used", words: "read, and access has ended", hint };
}

function renderCompany(company) {
  const changes = [];
  state.company = company;
  $("#company").dataset.companyId = company.companyId; // for tests and support; not for the customer's eyes
  $("#company-title").textContent = company.name;
  $("#erase-name").textContent = company.name;
  $("#checked-at").textContent = new Date().toLocaleTimeString();

  $("#journeys").replaceChildren(
    ...company.journeys.map((journey) => {
      const used = isUsed(journey);
      // A one-off journey that did what it was for is done once its access ended, whatever the API's status says.
      const ended = used && !usesLinked(journey, company.connections);
      const status = ended ? "done" : journey.status;
      const label = JOURNEY_STATUS[status] || status;
      const advice = journeyAdvice(journey, company.connections);
      const title = journeyTitle(journey.journey);
      noteChange(changes, `journey:${journey.journey}`, status, `${title}: ${label}.`);
      const data = journey.data ? (ended ? usedDataState(journey) : dataState(journey.data)) : null;
      if (data) noteChange(changes, `data:${journey.journey}`, data.key, `${title}: your data is ${data.words}.`);
      const terms = used ? "" : accessWords(state.journeys?.get(journey.journey) || {});
      return el(
        "article",
        { className: `journey status-${status}`, "aria-label": title },
        el("div", { className: "row" }, el("h3", {}, title), el("span", { className: "badge", dataset: { status } }, label)),
        el("p", { className: "advice" }, advice),
        el(
          "ul",
          { className: "plain requirements" },
          journey.requirements.map((r) => {
            const done = r.satisfied || (used && r.required);
            const progress = used && r.required ? "read" : r.satisfied ? "done" : "not yet";
            return el(
              "li",
              { className: done ? "done" : "" },
              el("span", { "aria-hidden": "true", className: "tick" }, done ? "✓" : "○"),
              ` ${sourceTitle(r.sourceType)} `,
              el("span", { className: "muted small" }, `${r.required ? "required" : "optional"} · ${progress}`),
            );
          }),
        ),
        terms ? el("p", { className: "muted small terms" }, terms) : null,
        data ? dataNote(data) : null,
      );
    }),
  );

  const list = $("#connections");
  $("#no-connections").hidden = company.connections.length > 0;
  $("#no-connections").textContent = state.endings?.companyPurged
    ? "No connections left: their data was deleted at Codat."
    : "Nothing connected yet. Choose your software below.";
  const focused = keptFocus(list);
  list.replaceChildren(
    ...company.connections.map((connection) => {
      const [tone, label, message] = connectionMessage(connection);
      const renewBy = connection.status === "Linked" && connection.renewBy ? connection.renewBy : null;
      noteChange(changes, `connection:${connection.connectionId}`, `${connection.status}|${connection.statusReason || ""}|${Boolean(connection.lastSyncAt)}|${renewBy || ""}`, `${connection.platformName}: ${label}. ${message}${renewBy ? ` ${renewByText(connection)}.` : ""}`);
      const fresh = state.freshLinks.get(connection.connectionId);
      // A link to authorize is done with once Linked; a link to renew, once the renewal moved the clock.
      if (connection.status === "Linked" && fresh && !(fresh.renewal && fresh.renewBy === connection.renewBy)) {
        state.freshLinks.delete(connection.connectionId);
      }
      return el(
        "li",
        { className: `connection tone-${tone}`, dataset: { connectionId: connection.connectionId, status: connection.status } },
        el("div", { className: "row" }, logo({ name: connection.platformName, logoUrl: logoFor(connection.platformKey) }),
          el("div", { className: "grow" }, el("h3", {}, connection.platformName), el("p", { className: "muted small" }, SOURCE_TYPES[connection.sourceType]?.title || connection.sourceType)),
          el("span", { className: `badge${tone === "done" ? " ended" : ""}`, dataset: { status: connection.status } }, label)),
        el("p", { className: "message" }, message),
        renewBy ? renewalNote(connection) : null,
        el("div", { className: "actions" }, connectionActions(connection)),
      );
    }),
  );
  focused?.();
  $("#manage-connections").hidden = company.connections.length === 0 || !state.config;
  renderSdkHint(company);
  if (changes.length) announce(changes.join(" "));
  if (state.integrations) renderIntegrations();
}

// The cards are drawn again at every poll: a control of a connection that had the focus gives it to the same
// control drawn again (same connection, same words), so the customer's place is not lost every two seconds.
function keptFocus(list) {
  const control = document.activeElement;
  const card = control?.closest?.("[data-connection-id]");
  if (!card || !list.contains(card) || !control.matches("a, button")) return null;
  const { connectionId } = card.dataset;
  const words = control.textContent;
  return () => {
    const again = [...list.querySelectorAll("[data-connection-id] a, [data-connection-id] button")]
      .find((c) => c.closest("[data-connection-id]").dataset.connectionId === connectionId && c.textContent === words);
    again?.focus();
  };
}

// "Codat is confirming…": shown from Codat's Link callback until the webhooks made the connection Linked here.
function renderSdkHint(company) {
  for (const connectionId of state.confirming) {
    if (company.connections.some((c) => c.connectionId === connectionId && c.status === "Linked")) {
      state.confirming.delete(connectionId);
    }
  }
  const hint = $("#sdk-hint");
  hint.hidden = state.confirming.size === 0;
  hint.textContent = state.confirming.size
    ? "Codat is confirming your new connection… This page updates by itself when it does."
    : "";
}

function dataTypeName(dataType) {
  return DATA_TYPE_NAMES[dataType] || dataType;
}

// A journey's data as the API gives it, in words: ready until its freshUntil; not ready while a type was never read
// (which ones); out of date once every type was read but the oldest read is too old (when that was). Only the
// API's dates are shown.
function dataState(data) {
  const missing = data.types.filter((t) => !t.lastReadAt).map((t) => dataTypeName(t.dataType));
  if (data.status === "ready") {
    return { tone: "ok", key: `ready|${data.freshUntil || ""}`, words: "ready for review", date: data.freshUntil && ["fresh until", data.freshUntil] };
  }
  if (missing.length) {
    return { tone: "progress", key: `missing|${missing.join(",")}`, words: "not ready yet", detail: `waiting for ${missing.join(", ")}` };
  }
  const oldest = data.types.map((t) => t.lastReadAt).reduce((a, b) => (!a || Date.parse(b) < Date.parse(a) ? b : a), null);
  const rule = Number.isInteger(data.maxAgeDays) ? `The bank needs it read within the last ${data.maxAgeDays} days.` : "";
  return { tone: "warn", key: `stale|${oldest || ""}`, words: "out of date", date: oldest && ["last read", oldest], hint: rule };
}

// "Your data: ready for review (fresh until 5 Jan 2027)", with the instant itself for machines.
function dataNote(readiness) {
  const parts = [el("strong", {}, "Your data:"), ` ${readiness.words}`];
  if (readiness.detail) parts.push(` — ${readiness.detail}`);
  if (readiness.date) {
    const [words, iso] = readiness.date;
    const stamp = el("time", { dateTime: iso }, day(iso));
    parts.push(readiness.tone === "ok" ? [` (${words} `, stamp, ")"] : [` — ${words} `, stamp]);
  }
  return el("div", { className: `data-state tone-${readiness.tone}` },
    el("p", { className: "data-line" }, ...parts),
    readiness.hint ? el("p", { className: "muted small" }, readiness.hint) : null);
}

function noteChange(changes, key, value, message) {
  const before = state.seen.get(key);
  state.seen.set(key, value);
  if (before !== undefined && before !== value) changes.push(message);
}

function logoFor(platformKey) {
  return state.integrations?.find((i) => i.platformKey === platformKey)?.logoUrl || "";
}

// "Renew by 28 Feb 2027", with the instant itself for machines; once renewal is open, what to do about it.
function renewalNote(connection) {
  const open = renewalOpen(connection);
  return el("p", { className: `renew-by small${open ? " due" : ""}` },
    "Renew by ", el("time", { dateTime: connection.renewBy }, day(connection.renewBy)),
    open ? ". Your consent runs out soon: renew it to keep sharing this data." : ".");
}

function authorizeLink(connection, url) {
  const name = connection.platformName;
  const link = el("a", { href: url, target: "_blank", rel: "noopener", className: "button primary" }, `Authorize ${name} at Codat`, el("span", { className: "visually-hidden" }, " (opens in a new tab)"), el("span", { "aria-hidden": "true" }, " ↗"));
  link.addEventListener("click", () => {
    state.freshLinks.delete(connection.connectionId); // each link works once
    setTimeout(() => renderCompany(state.company), 0);
    announce(`Codat's page for ${name} opened in a new tab. This page updates when you are done.`);
  });
  return link;
}

function connectionActions(connection) {
  const name = connection.platformName;
  if (isFulfilled(connection)) return []; // linked again, it would be unlinked by the next run: nothing to offer
  const fresh = state.freshLinks.get(connection.connectionId);
  if (connection.status === "Linked") {
    const revoke = el("button", { type: "button", className: "secondary", onclick: (event) => askRevoke(connection, event.currentTarget) }, `Revoke access to ${name}`);
    if (fresh) return [authorizeLink(connection, fresh.url), revoke];
    if (renewalOpen(connection)) {
      const renewal = el("button", { type: "button", className: "primary", onclick: (event) => run(() => renew(connection), event.currentTarget) }, `Renew access to ${name}`);
      return [renewal, revoke];
    }
    return [revoke];
  }
  if (fresh) return [authorizeLink(connection, fresh.url)];
  if (state.mode === "sdk") {
    const verb = connection.status === "PendingAuth" && !connection.statusReason ? "Authorize" : "Re-authorize";
    return [el("button", { type: "button", className: "primary", onclick: (event) => run(() => openCodatLink(event.currentTarget), event.currentTarget) }, `${verb} ${name} with Codat`)];
  }
  const verb = connection.status === "PendingAuth" && !connection.statusReason ? "Get a new link for" : "Re-authorize";
  return [el("button", { type: "button", className: "primary", onclick: (event) => run(() => connect(connection.platformKey), event.currentTarget) }, `${verb} ${name}`)];
}

function renderIntegrations() {
  const company = state.company;
  const nothing = nothingToConnect(company);
  $("#nothing-to-connect").textContent = nothing || "";
  $("#nothing-to-connect").hidden = !nothing;
  $("#connect-choices").hidden = Boolean(nothing);
  const roles = new Map(); // sourceType → journeys that require it / allow it
  for (const journey of company.journeys) {
    for (const r of journey.requirements) {
      const role = roles.get(r.sourceType) || { required: [], optional: [] };
      role[r.required ? "required" : "optional"].push(journeyTitle(journey.journey));
      roles.set(r.sourceType, role);
    }
  }
  const key = JSON.stringify([company.companyId, [...roles], company.connections.map((c) => [c.platformKey, c.status, c.renewBy, renewalOpen(c), isFulfilled(c)])]);
  if (key === state.tilesKey) return; // a poll with nothing new: keep the tiles (and the customer's focus)
  state.tilesKey = key;
  const byPlatform = new Map(company.connections.map((c) => [c.platformKey, c]));
  const linkedAccounting = company.connections.find((c) => c.sourceType === "accounting" && c.status === "Linked");
  const order = [...roles.keys()].sort((a, b) => (roles.get(b).required.length > 0) - (roles.get(a).required.length > 0));
  $("#integrations").replaceChildren(
    ...order.map((sourceType) => {
      const role = roles.get(sourceType);
      const items = state.integrations.filter((i) => i.sourceType === sourceType);
      const headingId = `type-${sourceType}`;
      return el(
        "section",
        { className: "source-type", "aria-labelledby": headingId },
        el("h3", { id: headingId }, sourceTitle(sourceType), " ",
          role.required.length
            ? el("span", { className: "badge required" }, "Required")
            : el("span", { className: "badge optional" }, "Optional")),
        el("p", { className: "muted small" }, role.required.length ? `Needed for ${role.required.join(" and ")}.` : `Helps your ${role.optional.join(" and ")}, if you have one.`),
        el("ul", { className: "plain tiles" }, items.map((integration) => el("li", {}, tile(integration, byPlatform.get(integration.platformKey), linkedAccounting)))),
      );
    }),
  );
}

// A tile connects the software; one already connected says so and cannot be clicked again.
function tile(integration, connection, linkedAccounting) {
  const name = integration.name;
  if (connection?.status === "Linked") {
    return el("div", { className: "tile connected", dataset: { platformKey: integration.platformKey } },
      logo(integration), el("span", { className: "grow" }, name, el("span", { className: "tile-status ok" }, "✓ Connected"),
        connection.renewBy ? el("span", { className: `tile-status renew-by${renewalOpen(connection) ? " due" : ""}` }, renewByText(connection)) : null));
  }
  if (connection && isFulfilled(connection)) {
    return el("div", { className: "tile unavailable", dataset: { platformKey: integration.platformKey } },
      logo(integration), el("span", { className: "grow" }, name, el("span", { className: "tile-status" }, "Access ended: your one-off consent was used")));
  }
  if (integration.sourceType === "accounting" && linkedAccounting) {
    return el("div", { className: "tile unavailable", dataset: { platformKey: integration.platformKey } },
      logo(integration), el("span", { className: "grow" }, name, el("span", { className: "tile-status" }, `Revoke ${linkedAccounting.platformName} first`)));
  }
  const status = {
    PendingAuth: el("span", { className: "tile-status" }, "Waiting for you"),
    Unlinked: el("span", { className: "tile-status warn" }, "Access revoked — choose to connect again"),
    Deauthorized: el("span", { className: "tile-status warn" }, "Access lost — choose to connect again"),
  }[connection?.status] || null;
  return el("button", { type: "button", className: "tile", dataset: { platformKey: integration.platformKey }, onclick: (event) => run(() => connect(integration.platformKey), event.currentTarget) },
    logo(integration), el("span", { className: "grow" }, name, status),
    el("span", { className: "visually-hidden" }, ` — connect ${sourceNoun(integration.sourceType)}`));
}

// -- actions ------------------------------------------------------------------------------------------------

async function connect(platformKey) {
  const companyId = state.company.companyId;
  const body = { platformKey, consentVersion: CONSENT_VERSION };
  const connection = await api("POST", `/companies/${encodeURIComponent(companyId)}/connections`, { body });
  if (connection.linkUrl) {
    // A Linked connection answered with a link: its renewal (it stays Linked until Codat reports it authorized).
    const renewal = connection.status === "Linked";
    state.freshLinks.set(connection.connectionId, { url: connection.linkUrl, renewal, renewBy: connection.renewBy });
  }
  await showCompany(companyId);
  announce(`${connection.platformName}: a link is ready. Choose "Authorize ${connection.platformName} at Codat" to continue.`);
  document.querySelector(`[data-connection-id="${connection.connectionId}"] .actions a, [data-connection-id="${connection.connectionId}"] .actions button`)?.focus();
}

// Renewing is connecting again to the same platform, with the terms she accepts now: the API answers the same
// connection with a fresh link, opened as when connecting. Refused (the window is not open by the API's policy):
// the problem's detail says when it opens, shown below her connections, where a poll does not redraw it away.
async function renew(connection) {
  try {
    await connect(connection.platformKey);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 409) throw error;
    showError(new ApiError(409, { title: `${connection.platformName} cannot be renewed yet`, detail: error.problem.detail || error.message }), $("#connections"));
  }
}

// -- Option 1: Codat's Link SDK and Connections SDK inside this page ---------------------------------------

async function loadConfig() {
  try {
    const response = await fetch("/demo/config.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`config: ${response.status}`);
    state.config = await response.json();
  } catch (error) {
    console.error(error);
    state.config = null;
  }
  const sdk = document.querySelector('input[name="connect-mode"][value="sdk"]');
  sdk.disabled = !state.config;
  $("#sdk-unavailable").hidden = Boolean(state.config);
}

function setMode(mode) {
  state.mode = mode === "sdk" && state.config ? "sdk" : "hosted";
  for (const input of document.querySelectorAll('input[name="connect-mode"]')) input.checked = input.value === state.mode;
  const sdk = state.mode === "sdk";
  $("#mode-hosted-intro").hidden = sdk;
  $("#mode-sdk-intro").hidden = !sdk;
  $("#sdk-connect").hidden = !sdk;
  $("#integrations").hidden = sdk; // Codat's Link lists the software itself
  if (state.company) renderCompany(state.company);
}

async function importSdk(url, name) {
  try {
    const module = await import(url);
    if (typeof module[name] !== "function") throw new Error(`${url} exports no ${name}`);
    return module[name];
  } catch (error) {
    console.error(error);
    throw new ApiError(0, { title: "Codat's window could not be loaded", detail: "Please check your connection and try again." });
  }
}

// The bank's backend first: it records that the customer opens Codat's component (with the terms she accepted,
// for Link) and hands back Codat's company access token for it.
function openSdkSession(component) {
  const path = `/companies/${encodeURIComponent(state.company.companyId)}/sdk-sessions`;
  const body = component === "link" ? { component, consentVersion: CONSENT_VERSION } : { component };
  return api("POST", path, { body });
}

function openSdkPanel(kind, label, origin) {
  const dialog = $("#sdk-dialog");
  const panel = { kind, origin, connected: false };
  state.sdk = panel;
  dialog.setAttribute("aria-label", label);
  $("#sdk-target").replaceChildren();
  dialog.showModal(); // the focus moves into the panel; the component then focuses its own heading
  // The component's callbacks count only while its panel is the one on screen (not after Escape closed it).
  const live = (callback) => (...args) => (state.sdk === panel ? callback(...args) : undefined);
  return { target: $("#sdk-target"), live };
}

// The component is done (or the customer pressed Escape): the panel goes, the focus returns where she was.
function closeSdkPanel(reason) {
  const current = state.sdk;
  if (!current) return;
  state.sdk = null;
  const dialog = $("#sdk-dialog");
  if (dialog.open) dialog.close();
  $("#sdk-target").replaceChildren();
  const origin = current.origin?.isConnected ? current.origin : $("#company-title");
  origin.focus();
  if (current.kind === "link" && reason === "close" && !current.connected) {
    announce("Codat's window was closed. Nothing was connected.");
  }
  refreshCompany();
}

async function refreshCompany() {
  if (!state.company) return;
  try {
    const company = await api("GET", `/companies/${encodeURIComponent(state.company.companyId)}`);
    await readEndings(company);
    if (state.company && company.companyId === state.company.companyId) renderCompany(company);
  } catch (error) {
    console.error(error); // the poll retries
  }
}

// A callback of Codat's component: said to the customer in plain words where she is looking, next to the button
// that opened it.
function sdkFailed(error) {
  const origin = state.sdk?.origin;
  closeSdkPanel("error");
  const reference = error?.correlationId ? ` (Codat's reference: ${error.correlationId})` : "";
  const problem = error?.userRecoverable
    ? { title: "Codat could not finish", detail: `Something went wrong at Codat, so nothing more was connected. Please try again in a moment${reference}.` }
    : { title: "Codat's window could not open", detail: `Codat did not accept this session. Please reload the page and try again; if it keeps happening, contact the bank${reference}.` };
  showError(new ApiError(0, problem), origin);
}

async function openCodatLink(origin) {
  const CodatLink = await importSdk(state.config.linkSdkUrl, "CodatLink");
  const session = await openSdkSession("link");
  const { target, live } = openSdkPanel("link", "Codat: connect your software", origin);
  new CodatLink({
    target,
    props: {
      companyId: state.company.companyId,
      accessToken: session.accessToken,
      // A hint only: the connection counts once Codat's webhooks say so (the page keeps polling).
      onConnection: live(({ connectionId }) => {
        state.sdk.connected = true;
        state.confirming.add(connectionId);
        if (state.company) renderSdkHint(state.company);
        announce("Codat is confirming your new connection.");
      }),
      onFinish: live(() => closeSdkPanel("finish")),
      onClose: live(() => closeSdkPanel("close")),
      onError: live(sdkFailed),
    },
  });
}

async function openCodatConnections(origin) {
  const CodatConnections = await importSdk(state.config.connectionsSdkUrl, "CodatConnections");
  const session = await openSdkSession("connections");
  const { target, live } = openSdkPanel("connections", "Codat: manage your connections", origin);
  new CodatConnections({
    target,
    props: { accessToken: session.accessToken, onClose: live(() => closeSdkPanel("close")), onError: live(sdkFailed) },
  });
}

function askRevoke(connection, origin) {
  const dialog = $("#revoke-dialog");
  state.revoking = { connection, origin };
  $("#revoke-name").textContent = connection.platformName;
  dialog.returnValue = "";
  dialog.showModal();
}

async function revoke(connection) {
  const companyId = state.company.companyId;
  await api("DELETE", `/companies/${encodeURIComponent(companyId)}/connections/${encodeURIComponent(connection.connectionId)}`);
  await showCompany(companyId);
  showNotice(`Access to ${connection.platformName} was withdrawn, and the bank's systems were told.`);
}

// The company's consent history, oldest first (at most 500 entries).
async function historyEntries(companyId) {
  const path = `/companies/${encodeURIComponent(companyId)}/events`;
  const entries = [];
  let cursor = null;
  do {
    const page = await api("GET", `${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    entries.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && entries.length < 500);
  return entries;
}

async function loadHistory() {
  const list = $("#history");
  const entries = await historyEntries(state.company.companyId);
  list.replaceChildren(
    ...entries.map((entry) =>
      el("li", {},
        el("time", { dateTime: entry.at }, when(entry.at)),
        el("span", { className: "event" }, eventLabel(entry)),
        // A data entry's label names its journey already; an ending's, its platform and why.
        el("span", { className: "muted small" }, [entry.platformKey && !isEnding(entry) && platformName(entry.platformKey), entry.journey && !isDataEntry(entry) && journeyTitle(entry.journey), !isRenewalRequest(entry) && !isEnding(entry) && entry.detail, actorWords(entry)].filter(Boolean).join(" · ")),
      ),
    ),
  );
  list.hidden = false;
  $("#load-history").textContent = "Refresh history";
  $("#load-history").setAttribute("aria-expanded", "true");
  announce(`${entries.length} entries in the consent history.`);
}

// An entry of the consent clock says its dates, one of data readiness its journey, date and data types; any other,
// its label.
function eventLabel(entry) {
  if (entry.type === "consent.fulfilled") return fulfilledLabel(entry);
  if (entry.type === "data.purged") return purgedLabel(entry);
  if (entry.type === "journey.data_ready") return dataReadyLabel(entry);
  if (entry.type === "journey.data_stale") return dataStaleLabel(entry);
  if (entry.type === "connection.expiring" && entry.renewBy) {
    const n = entry.reminderDays;
    const left = Number.isInteger(n) ? ` (${n} ${n === 1 ? "day" : "days"} left)` : "";
    return `Reminder: renew by ${day(entry.renewBy)}${left}`;
  }
  if (entry.type === "connection.renewed" && entry.consentExpiresAt) return `You renewed access (until ${day(entry.consentExpiresAt)})`;
  if (isRenewalRequest(entry)) return "Renewal started";
  return EVENT_LABELS[entry.type] || entry.type;
}

function isEnding(entry) {
  return entry.type === "consent.fulfilled" || entry.type === "data.purged";
}

// Her one-off consent is ended on her behalf (its actor is her), as she agreed when she chose the journey.
function actorWords(entry) {
  if (!entry.actor.startsWith("customer:")) return `by ${entry.actor}`;
  return entry.type === "consent.fulfilled" ? "on your behalf, as agreed" : "by you";
}

// "Access to Codat Sandbox ended: your one-off consent for the credit check was used".
function fulfilledLabel(entry) {
  const journey = entry.sourceType ? usedJourneyFor(entry.sourceType) : null;
  const purpose = journey ? ` for the ${inSentence(journeyTitle(journey.journey))}` : "";
  return `Access to ${platformName(entry.platformKey)} ended: your one-off consent${purpose} was used`;
}

// "Codat Sandbox's data deleted, 30 days after access ended"; the company's own: nothing of it left at Codat.
function purgedLabel(entry) {
  if (!entry.connectionId) return "Nothing left: this company was deleted at Codat; its history stays here";
  const days = entry.retainDays;
  const after = Number.isInteger(days) ? `, ${days} ${days === 1 ? "day" : "days"} after access ended` : "";
  return `${platformName(entry.platformKey)}'s data deleted${after}`;
}

function isDataEntry(entry) {
  return entry.type === "journey.data_ready" || entry.type === "journey.data_stale";
}

// "Loan application: data ready for review (fresh until 5 Jan 2027)", with the instant itself for machines.
function dataReadyLabel(entry) {
  const title = journeyTitle(entry.journey);
  if (!entry.freshUntil) return `${title}: data ready for review`;
  return [`${title}: data ready for review (fresh until `, el("time", { dateTime: entry.freshUntil }, day(entry.freshUntil)), ")"];
}

// Why the data stopped counting: time made a read too old (the consent clock), or a connection that read it went —
// revoked (by her: the history says "by you"), or lost at the provider (Codat's report, or reconciliation's).
function dataStaleLabel(entry) {
  const title = journeyTitle(entry.journey);
  const types = (entry.staleTypes || []).map(dataTypeName).join(", ");
  if (entry.actor === "consent-clock") {
    const days = state.journeys?.get(entry.journey)?.data?.maxAgeDays;
    const age = Number.isInteger(days) ? `more than ${days} days ago` : "too long ago";
    return `${title}: data out of date — ${types || "some of it"} last read ${age}`;
  }
  const what = types ? `the access that read ${types}` : "the access it was read from";
  return `${title}: data no longer current — ${what} was ${entry.actor.startsWith("customer:") ? "revoked" : "lost"}`;
}

// A fresh link asked for a connection that stays Linked meanwhile: the API says so in the entry's detail.
function isRenewalRequest(entry) {
  return entry.type === "connection.link_requested" && /\brenew/i.test(entry.detail || "");
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
  showNotice(`${name} was erased, at Codat and here, with every connection.`);
  announce(`${name} was erased.`);
}

// -- make dev only: rehearse the consent lifecycle -----------------------------------------------------------

// Asks `make dev` for its clock: answered, the page reads the stack's (moved) time and shows the rehearsal panel;
// anything else but "still starting" (a deployed API has no such route) means the browser's time and no panel.
async function loadDevClock() {
  let described = null;
  try {
    const response = await fetch(DEV_CLOCK_PATH, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (response.status === 503) return; // make dev is still starting: ask again at the next poll
    described = response.ok ? await response.json() : null;
  } catch {
    return; // unreachable: the offline banner says so; ask again at the next poll
  }
  setDevClock(described && typeof described.now === "string" && !Number.isNaN(Date.parse(described.now)) ? described : null);
}

function setDevClock(described) {
  state.devClockRoute = described ? "present" : "absent";
  state.devClock = described ? { offsetMs: Date.parse(described.now) - Date.now(), offsetSeconds: Number(described.offsetSeconds) || 0, now: described.now } : null;
  $("#rehearse").hidden = !described;
  if (!described) return;
  $("#rehearse-now").textContent = when(described.now);
  $("#rehearse-now").dateTime = described.now;
  $("#rehearse-offset").textContent = aheadText(state.devClock.offsetSeconds);
}

function aheadText(seconds) {
  if (seconds < 60) return "(real time)";
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const parts = [days && `${days} ${days === 1 ? "day" : "days"}`, hours && `${hours} h`, minutes && `${minutes} min`].filter(Boolean);
  return `(${parts.join(" ")} ahead of real time)`;
}

async function devCall(path, body) {
  const init = { method: "POST", headers: { Accept: "application/json" }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { title: "make dev cannot be reached", detail: "Is it still running?" });
  }
  const data = await response.json().catch(() => null);
  // The dev routes' own problems (clock_not_movable, invalid_duration…): their detail, not the API's messages.
  if (!response.ok) throw new ApiError(response.status, { title: data?.title || "make dev refused", detail: data?.detail || `It answered ${response.status}.` });
  return data;
}

async function afterRehearsal(message) {
  $("#rehearse-status").textContent = message;
  await refreshCompany();
  if (!$("#history").hidden) await loadHistory();
}

async function advanceClock(duration, label) {
  setDevClock(await devCall(DEV_CLOCK_PATH, { advance: duration }));
  await afterRehearsal(`Time moved forward ${label}: it is now ${when(state.devClock.now)}.`);
}

async function sendReminders() {
  const report = await devCall(DEV_REMINDERS_PATH); // the run's report: how many reminders it sent, among others
  const sent = report?.sent ?? report?.reminders?.sent;
  const count = (n, one, many) => (Number.isInteger(n) && n > 0 ? `${n} ${n === 1 ? one : many}` : null);
  const ended = [
    count(report?.unlinked, "one-off consent ended", "one-off consents ended"),
    count(report?.purged, "connection's data deleted", "connections' data deleted"),
    count(report?.erased, "company deleted at Codat", "companies deleted at Codat"),
  ].filter(Boolean);
  const reminders = Number.isInteger(sent) ? `Reminders run: ${sent} sent.` : "Reminders run.";
  await afterRehearsal(ended.length ? `${reminders} ${ended.join(", ")}.` : reminders);
}

// -- wiring -------------------------------------------------------------------------------------------------

$("#signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const customer = $("#customer-id").value.trim();
  if (customer) run(() => signIn(customer), event.submitter);
});
$("#company-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(() => createCompany(event.target), event.submitter);
});
$("#sign-out").addEventListener("click", signOut);
for (const input of document.querySelectorAll('input[name="connect-mode"]')) {
  input.addEventListener("change", () => {
    setMode(input.value);
    announce(state.mode === "sdk" ? "You connect inside this page, in Codat's window." : "You connect on Codat's page, in a new tab.");
  });
}
$("#open-link").addEventListener("click", (event) => run(() => openCodatLink(event.currentTarget), event.currentTarget));
$("#manage-connections").addEventListener("click", (event) => run(() => openCodatConnections(event.currentTarget), event.currentTarget));
$("#sdk-dialog").addEventListener("close", () => closeSdkPanel("close"));
for (const button of document.querySelectorAll("#rehearse [data-advance]")) {
  button.addEventListener("click", (event) => run(() => advanceClock(button.dataset.advance, button.textContent.replace("+", "")), event.currentTarget));
}
$("#send-reminders").addEventListener("click", (event) => run(sendReminders, event.currentTarget));
$("#back").addEventListener("click", (event) => run(showStart, event.currentTarget));
$("#load-history").addEventListener("click", (event) => run(loadHistory, event.currentTarget));
$("#erase").addEventListener("click", askErase);
$("#erase-dialog").addEventListener("close", (event) => {
  if (event.target.returnValue === "erase") run(erase, $("#erase"));
  else $("#erase").focus();
});
$("#revoke-dialog").addEventListener("close", (event) => {
  const { connection, origin } = state.revoking || {};
  state.revoking = null;
  if (!connection) return;
  if (event.target.returnValue === "revoke") run(() => revoke(connection), origin);
  else origin?.focus();
});

$("#consent-version").textContent = CONSENT_VERSION;
await Promise.all([loadConfig(), loadDevClock()]);
setMode("hosted");

const remembered = sessionStorage.getItem("demo.customer");
if (remembered) run(() => signIn(remembered));
else $("#customer-id").focus();
