// The driftgate page: reads the JSON API every 2 s and renders it; posts spot-check labels.
// Every value from the API is written with textContent, never parsed as HTML.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var QUEUE_PAGE = 12; // cases shown at once; "Show more" adds as many again
  var TOKEN_KEY = "driftgate.token";
  var config = JSON.parse(document.getElementById("driftgate-config").textContent);
  var names = config.deployments || [];

  // -- the token: taken once from ?token=, kept for this tab, removed from the address bar --------

  var params = new URLSearchParams(window.location.search);
  if (params.has("token")) {
    var given = params.get("token");
    if (given) storage("set", TOKEN_KEY, given);
    params.delete("token");
    replaceQuery();
  }

  function storage(op, key, value) {
    try {
      if (op === "set") return window.sessionStorage.setItem(key, value);
      if (op === "remove") return window.sessionStorage.removeItem(key);
      return window.sessionStorage.getItem(key);
    } catch (e) {
      return null; // storage disabled: the page still works without a token
    }
  }

  function replaceQuery() {
    var rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : "") + window.location.hash);
  }

  // -- small helpers -----------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = String(value);
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.append(child); // strings become text nodes
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function pct(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    return (x * 100).toFixed(digits === undefined ? 0 : digits) + "%";
  }

  function count(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en"); }

  function share(x) { return Math.max(0, Math.min(1, Number(x) || 0)); }

  function timeOf(iso) {
    if (!iso) return "–";
    var date = new Date(iso);
    return isNaN(date.getTime()) ? String(iso) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function enc(s) { return encodeURIComponent(s); }

  // -- the API -----------------------------------------------------------------------------------

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  function api(path, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    var token = storage("get", TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    if (options.body) headers["Content-Type"] = "application/json";
    // Relative paths: the page works behind a path prefix too.
    return fetch(path, {
      method: options.method || "GET", headers: headers, body: options.body,
      cache: "no-store", credentials: "omit"
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var detail = data && data.detail ? data.detail : response.statusText;
          throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
        }
        return { status: response.status, data: data };
      });
    }, function () {
      throw new ApiError(0, "cannot reach driftgate");
    });
  }

  // -- state of the page -------------------------------------------------------------------------

  var current = params.get("deployment");
  var unknownAsked = current && names.indexOf(current) < 0 ? current : null;
  if (names.indexOf(current) < 0) current = names.length ? names[0] : null;
  var generation = 0; // bumped when the deployment changes: late answers for the old one are dropped
  var timer = null;
  var cards = new Map(); // request_id -> card element
  var settled = new Set(); // request ids labelled here that the server may still list for a moment
  var caseNumber = 0;
  var shownLimit = QUEUE_PAGE;
  var lastQueue = { cases: [], classes: [] };

  function sentKey() { return "driftgate.sent." + current; }
  function sentCount() { return Number(storage("get", sentKey())) || 0; }

  // -- rendering ---------------------------------------------------------------------------------

  var VERDICTS = {
    go: { word: "Go", mark: "✓", meaning: "Safe to promote: every blocking check passes." },
    no_go: { word: "No go", mark: "✗", meaning: "Do not promote: a blocking check fails." },
    pending: { word: "Pending", mark: "…", meaning: "Not enough data yet to decide; never go until there is." },
    inconclusive: {
      word: "Inconclusive", mark: "?",
      meaning: "The decision window ran out without enough evidence either way."
    }
  };

  var CHECK_NAMES = {
    class_divergence: "Class mix against live",
    reference_divergence: "Class mix against the reference",
    collapse: "Collapse onto one class",
    disagreement: "Disagreement between the models",
    accuracy: "Accuracy on labelled requests",
    class_precision: "Precision per class"
  };

  var STATUS_WORDS = {
    pass: "✓ pass", fail: "✗ fail", warn: "! warning", insufficient_data: "… not enough data"
  };

  // Checks whose value must stay above the threshold (the others must stay below it).
  var FLOOR_CHECKS = { accuracy: true, class_precision: true };
  var POINT_CHECKS = { accuracy: true, class_precision: true };
  var SHARE_CHECKS = { collapse: true, disagreement: true };

  function checkFigure(check, x) {
    var name = check.name;
    if (x === null || x === undefined || !isFinite(x)) return "–";
    if (POINT_CHECKS[name]) return (x > 0 ? "+" : x < 0 ? "−" : "") + Math.abs(x * 100).toFixed(1) + " points";
    // The sequential test of the class mix measures the largest gap between class shares, in points;
    // the fixed one a Jensen-Shannon distance.
    if (name === "class_divergence" && check.evidence) return Math.abs(x * 100).toFixed(1) + " points";
    if (SHARE_CHECKS[name]) return pct(x, 1);
    return Number(x).toFixed(3);
  }

  function renderVerdict(verdict) {
    var known = VERDICTS[verdict.verdict] || { word: verdict.verdict, mark: "?", meaning: "" };
    var panel = $("verdict-panel");
    panel.setAttribute("data-verdict", verdict.verdict);
    var mark = $("verdict-mark");
    clear(mark);
    mark.append(el("span", { text: known.mark }));
    $("verdict-word").textContent = known.word;
    var meaning = known.meaning;
    if (verdict.canary_version || verdict.live_version) {
      meaning += " Canary " + (verdict.canary_version || "?") + " against live " + (verdict.live_version || "?") + ".";
    }
    $("verdict-meaning").textContent = meaning;
    $("versions").textContent = current + " · live " + (verdict.live_version || "–") +
      " · canary " + (verdict.canary_version || "–");

    var reasons = $("reasons");
    clear(reasons);
    (verdict.reasons || []).forEach(function (reason) { reasons.append(el("li", { text: reason })); });

    var samples = verdict.samples || {};
    var dl = $("samples");
    clear(dl);
    [["Live predictions", samples.live], ["Canary predictions", samples.canary],
     ["Labelled by feedback", samples.feedback], ["Spot-check labels", samples.spotcheck_labels]]
      .forEach(function (pair) {
        dl.append(el("div", null, el("dt", { text: pair[0] }), el("dd", { text: count(pair[1]) })));
      });
    dl.append(el("div", null, el("dt", { text: "Evaluated at (event time)" }),
                 el("dd", { class: "small", text: timeOf(verdict.evaluated_at) })));

    var list = $("checks");
    clear(list);
    var checks = verdict.checks || [];
    if (!checks.length) list.append(el("li", { class: "empty", text: "No checks yet: no canary predictions." }));
    checks.forEach(function (check) {
      var floor = FLOOR_CHECKS[check.name];
      var figures = "value " + checkFigure(check, check.value);
      if (check.threshold !== null && check.threshold !== undefined) {
        figures += " · limit " + checkFigure(check, check.threshold) +
          (floor ? " (must not fall below)" : " (must not exceed)");
      }
      figures += check.blocking === false ? " · does not block" : " · blocking";
      list.append(el("li", { class: "check", "data-check": check.name, "data-status": check.status },
        el("div", { class: "check-head" },
          el("span", { class: "badge " + check.status, text: STATUS_WORDS[check.status] || check.status }),
          el("span", { class: "check-name", text: CHECK_NAMES[check.name] || check.name.replace(/_/g, " ") })),
        el("div", { class: "check-figures", text: figures }),
        el("p", { class: "check-detail", text: check.detail || "" })));
    });
  }

  function barRow(role, label, fraction, valueText, interval) {
    var track = el("div", { class: "track", "aria-hidden": "true" });
    var fill = el("div", { class: "fill " + role + (interval ? " light" : "") });
    fill.style.width = (share(fraction) * 100).toFixed(2) + "%";
    track.append(fill);
    if (interval) {
      var whisker = el("div", { class: "whisker" });
      var lower = share(interval[0]), upper = share(interval[1]);
      whisker.style.left = (lower * 100).toFixed(2) + "%";
      whisker.style.width = (Math.max(upper - lower, 0.004) * 100).toFixed(2) + "%";
      track.append(whisker);
    }
    return el("div", { class: "bar-row", "data-role": role },
      el("span", { class: "bar-label", text: label }), track, el("span", { class: "bar-value", text: valueText }));
  }

  function renderDistribution(snapshot) {
    var box = $("distribution");
    var legend = $("dist-legend");
    clear(box);
    clear(legend);
    var comparison = snapshot.comparison;
    var reference = config.references[current] || null;
    var note = $("dist-note");
    if (!comparison) {
      note.textContent = "";
      box.append(el("p", { class: "empty", text: "No canary predictions yet." }));
      return;
    }
    var roles = [["live", "Live", comparison.live || {}], ["canary", "Canary", comparison.canary || {}]];
    if (reference) roles.push(["reference", "Reference", null]);
    roles.forEach(function (role) { legend.append(el("span", { class: role[0], text: role[1] })); });
    var totals = {};
    roles.forEach(function (role) {
      if (!role[2]) return;
      totals[role[0]] = Object.keys(role[2]).reduce(function (sum, k) { return sum + role[2][k]; }, 0);
    });
    var classes = snapshot.classes || [];
    classes.forEach(function (cls) {
      var group = el("div", { class: "class-group", "data-class": cls }, el("h3", { text: cls }));
      roles.forEach(function (role) {
        var fraction, text;
        if (role[2]) {
          var n = role[2][cls] || 0;
          fraction = totals[role[0]] ? n / totals[role[0]] : 0;
          text = pct(fraction, 1) + " (" + count(n) + ")";
        } else {
          fraction = reference[cls] || 0;
          text = pct(fraction, 1);
        }
        group.append(barRow(role[0], role[1], fraction, text));
      });
      box.append(group);
    });
    var divergence = comparison.divergence || {};
    var words = [];
    if (divergence.live) {
      words.push("JS distance canary vs live " + Number(divergence.live.js).toFixed(3) +
        " (chi-square p " + formatP(divergence.live.chi2_pvalue) + ")");
    }
    if (divergence.reference) {
      words.push("canary vs reference " + Number(divergence.reference.js).toFixed(3) +
        " (p " + formatP(divergence.reference.chi2_pvalue) + ")");
    }
    words.push(count(comparison.pairs) + " requests answered by both, " +
      pct(comparison.disagreement_rate, 1) + " of them differently");
    note.textContent = words.join("; ") + ".";
  }

  function formatP(p) {
    if (p === null || p === undefined || !isFinite(p)) return "–";
    return p < 0.001 ? "< 0.001" : Number(p).toFixed(3);
  }

  function intervalText(figure) {
    if (!figure || !figure.labelled) return "no labels yet";
    return pct(figure.estimate) + " [" + pct(figure.lower) + "–" + pct(figure.upper) + "] · " +
      count(figure.correct) + "/" + count(figure.labelled);
  }

  function precisionRow(role, label, figure) {
    var has = figure && figure.labelled;
    return barRow(role, label, has ? figure.estimate : 0, intervalText(figure),
      has ? [figure.lower, figure.upper] : null);
  }

  function renderPrecision(snapshot) {
    var accuracy = $("accuracy");
    var box = $("precision");
    clear(accuracy);
    clear(box);
    var feedback = snapshot.comparison && snapshot.comparison.feedback;
    if (!feedback) {
      box.append(el("p", { class: "empty", text: "No labelled requests yet." }));
      $("spot-share").textContent = "";
      return;
    }
    accuracy.append(el("h3", { text: "Overall accuracy" }));
    accuracy.append(precisionRow("live", "Live", feedback.live.accuracy));
    accuracy.append(precisionRow("canary", "Canary", feedback.canary.accuracy));
    (snapshot.classes || []).forEach(function (cls) {
      box.append(el("div", { class: "class-group", "data-class": cls },
        el("h3", { text: "Precision of “" + cls + "”" }),
        precisionRow("live", "Live", feedback.live.precision[cls]),
        precisionRow("canary", "Canary", feedback.canary.precision[cls])));
    });
    $("spot-share").textContent = count(feedback.labelled_pairs) + " labelled requests with both answers judged. " +
      pct(feedback.spotcheck_share, 1) + " of the canary's judged answers rest on spot-check labels; " +
      count(feedback.awaiting_spotcheck) + " canary answers wait for one.";
  }

  // The canary's inputs against the baseline: Wasserstein (numeric) or Jensen-Shannon (categorical), per column.
  function renderDrift(snapshot) {
    var box = $("drift");
    clear(box);
    var features = snapshot.features || {};
    var suffix = features.baseline === "live" ? "_vs_live" : "";
    var rows = (features.drift || []).filter(function (f) {
      return f.role === "canary" && (f.test === "wasserstein" + suffix || f.test === "js" + suffix);
    }).sort(function (a, b) { return b.value - a.value; });
    $("drift-note").textContent = rows.length
      ? "Canary against " + (features.baseline === "live" ? "live" : "the reference profile") +
        "; 0 is no drift, above 0.1 is drift by the default threshold. One prediction in " +
        count(features.sample_every) + " is binned."
      : "";
    if (!rows.length) {
      box.append(el("p", { class: "empty", text: features.layout === "learning"
        ? "Learning the bins from live's first rows…" : "No features seen yet." }));
      return;
    }
    var table = el("table", { class: "drift-table" },
      el("thead", {}, el("tr", {}, el("th", { text: "Feature" }), el("th", { text: "Test" }),
        el("th", { text: "Drift" }), el("th", { text: "Rows" }))));
    var body = el("tbody", {});
    rows.forEach(function (f) {
      var bound = f.error_bound > 0 ? " ± " + f.error_bound.toFixed(3) : "";
      body.append(el("tr", { "data-feature": f.feature, class: f.value > 0.1 ? "drifted" : "" },
        el("td", { text: f.feature }), el("td", { text: f.test.replace("_vs_live", "") }),
        el("td", { text: f.value.toFixed(3) + bound }), el("td", { text: count(f.rows) })));
    });
    table.append(body);
    box.append(table);
  }

  function renderCounts(verdict, snapshot) {
    $("count-sent").textContent = count(sentCount());
    $("count-received").textContent = count((verdict.samples || {}).spotcheck_labels || 0);
    var spot = snapshot.spotcheck || {};
    $("count-waiting").textContent = count(spot.waiting || 0);
    $("jump-waiting").textContent = count(spot.waiting || 0);
    $("count-picked").textContent = count(spot.picked || 0) + " of " + count(spot.offered || 0);
  }

  // -- the spot-check queue ----------------------------------------------------------------------

  function scoreList(scores) {
    var list = el("ul", { class: "scores" });
    if (!scores) return list;
    Object.keys(scores).sort(function (a, b) { return scores[b] - scores[a]; }).forEach(function (cls) {
      list.append(el("li", null, el("span", { text: cls }), el("span", { text: Number(scores[cls]).toFixed(2) })));
    });
    return list;
  }

  function featureText(value) {
    if (value === null) return "null";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function buildCard(item, classes) {
    caseNumber += 1;
    var titleId = "case-" + caseNumber;
    var priority = Number(item.priority) > 1;
    var card = el("li", { class: "case" + (priority ? " priority" : ""), "data-request-id": item.request_id },
      el("h3", { id: titleId, text: "Request " + item.request_id }),
      el("p", { class: "meta", text: timeOf(item.ts) + (priority ? " · priority case" : "") +
        (item.canary_version ? " · canary " + item.canary_version : "") }));
    card.append(el("div", { class: "answers" },
      el("div", { class: "answer live" }, el("div", { class: "who", text: "Live says" }),
        el("div", { class: "label", text: item.live_label }), scoreList(item.live_scores)),
      el("div", { class: "answer canary" }, el("div", { class: "who", text: "Canary says" }),
        el("div", { class: "label", text: item.canary_label }), scoreList(item.canary_scores))));
    var features = item.features || {};
    var keys = Object.keys(features);
    if (keys.length) {
      var dl = el("dl", { class: "features", "aria-label": "Features" });
      keys.forEach(function (key) {
        dl.append(el("dt", { text: key }), el("dd", { text: featureText(features[key]) }));
      });
      card.append(dl);
    } else {
      card.append(el("p", { class: "meta", text: "No features were sent with this request." }));
    }
    var choices = el("div", { class: "choices", role: "group", "aria-label": "The right class for request " +
      item.request_id });
    var options = classes.length ? classes : [item.live_label, item.canary_label];
    options.forEach(function (cls) {
      var button = el("button", { type: "button", "data-label": cls, "aria-describedby": titleId, text: cls });
      button.addEventListener("click", function () { sendLabel(card, item, cls); });
      choices.append(button);
    });
    var unsure = el("button", { type: "button", class: "unsure", "data-label": "unsure",
      "aria-describedby": titleId, text: "Unsure" });
    unsure.addEventListener("click", function () { sendLabel(card, item, "unsure"); });
    choices.append(unsure);
    card.append(choices, el("p", { class: "error", role: "alert", hidden: true }));
    return card;
  }

  function renderQueue(cases, classes) {
    lastQueue = { cases: cases, classes: classes };
    var list = $("cases");
    var listed = new Set(cases.map(function (c) { return c.request_id; }));
    settled.forEach(function (id) { if (!listed.has(id)) settled.delete(id); });
    var open = cases.filter(function (c) { return !settled.has(c.request_id); });
    var visible = open.slice(0, shownLimit);
    var more = $("queue-more");
    more.hidden = open.length <= visible.length;
    more.textContent = "Show " + Math.min(QUEUE_PAGE, open.length - visible.length) + " more of " +
      (open.length - visible.length) + " waiting";
    var wanted = new Set(visible.map(function (c) { return c.request_id; }));
    cards.forEach(function (card, id) {
      if (!wanted.has(id)) { card.remove(); cards.delete(id); }
    });
    var previous = null;
    visible.forEach(function (item) {
      var card = cards.get(item.request_id);
      if (!card) {
        card = buildCard(item, classes);
        cards.set(item.request_id, card);
      }
      var place = previous ? previous.nextSibling : list.firstChild;
      if (card !== place) list.insertBefore(card, place);
      previous = card;
    });
    $("queue-empty").hidden = visible.length > 0;
  }

  function announce(text) { $("announce").textContent = text; }

  function sendLabel(card, item, label) {
    var buttons = card.querySelectorAll("button");
    var error = card.querySelector(".error");
    buttons.forEach(function (b) { b.disabled = true; });
    var asked = generation;
    api("v1/deployments/" + enc(current) + "/labels", {
      method: "POST", body: JSON.stringify({ request_id: item.request_id, label: label })
    }).then(function (answer) {
      if (asked !== generation) return;
      settled.add(item.request_id);
      if (answer.status === 202) {
        storage("set", sentKey(), String(sentCount() + 1));
        $("count-sent").textContent = count(sentCount());
        announce("Sent “" + label + "” for request " + item.request_id + ".");
      } else {
        announce("Request " + item.request_id + " set aside as unsure.");
      }
      var hadFocus = card.contains(document.activeElement);
      var next = card.nextElementSibling || card.previousElementSibling;
      card.remove();
      cards.delete(item.request_id);
      $("queue-empty").hidden = cards.size > 0;
      if (hadFocus) {
        var target = next && next.querySelector("button");
        (target || $("queue-title")).focus();
      }
    }, function (failure) {
      buttons.forEach(function (b) { b.disabled = false; });
      error.textContent = "Not sent: " + (failure.message || "error") + (failure.status ? " (" + failure.status + ")" : "");
      error.hidden = false;
    });
  }

  // -- polling -----------------------------------------------------------------------------------

  function setStatus(text, isError) {
    var status = $("status");
    status.textContent = text;
    status.classList.toggle("error", !!isError);
  }

  function explain(failure) {
    if (failure.status === 401) {
      storage("remove", TOKEN_KEY);
      return "The API needs its token: open this page once as /ui?token=<token>.";
    }
    if (failure.status === 0) return "Cannot reach driftgate; trying again every 2 s.";
    return "The API answered " + failure.status + ": " + failure.message;
  }

  function refresh() {
    timer = null;
    if (!current) {
      setStatus("No deployment is configured.", true);
      return;
    }
    var asked = generation;
    var base = "v1/deployments/" + enc(current);
    Promise.all([api(base + "/verdict"), api(base + "/metrics"), api(base + "/spotcheck")])
      .then(function (answers) {
        if (asked !== generation) return;
        var verdict = answers[0].data, snapshot = answers[1].data, queue = answers[2].data;
        renderVerdict(verdict);
        renderDistribution(snapshot);
        renderPrecision(snapshot);
        renderDrift(snapshot);
        renderCounts(verdict, snapshot);
        renderQueue(queue.cases || [], snapshot.classes || []);
        setStatus("Updated " + new Date().toLocaleTimeString() + " · refreshes every 2 s");
      }, function (failure) {
        if (asked !== generation) return;
        setStatus(explain(failure), true);
      })
      .then(function () {
        if (asked === generation) timer = window.setTimeout(refresh, POLL_MS);
      });
  }

  function select(name) {
    current = name;
    generation += 1;
    if (timer !== null) window.clearTimeout(timer);
    timer = null;
    cards.forEach(function (card) { card.remove(); });
    cards.clear();
    settled.clear();
    shownLimit = QUEUE_PAGE;
    announce("");
    params.set("deployment", name);
    replaceQuery();
    refresh();
  }

  $("queue-more").addEventListener("click", function () {
    shownLimit += QUEUE_PAGE;
    renderQueue(lastQueue.cases, lastQueue.classes);
  });

  function setUpPicker() {
    if (names.length < 2) return;
    var picker = $("deployment");
    names.forEach(function (name) {
      picker.append(el("option", { value: name, text: name, selected: name === current }));
    });
    picker.value = current;
    picker.addEventListener("change", function () { select(picker.value); });
    $("picker").hidden = false;
  }

  setUpPicker();
  if (unknownAsked) announce("There is no deployment “" + unknownAsked + "”; showing " + current + ".");
  refresh();
})();
