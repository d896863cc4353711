// The chat page: conversations, streamed replies, emoji labels, regenerate-and-pick, corrections and the
// reward vector. Plain JS against the same server's API; every action is saved at once (docs/SERVING.md).
"use strict";

const LABELS = ["😊+2", "😊+1", "😟-1", "😟-2", "🚀", "💔", "⏳", "🪞", "🤗", "🎭"];
const state = { conversationId: null, busy: false };
const $ = (sel) => document.querySelector(sel);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem("hominem_api_key");  // only needed when the server is off loopback
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function api(path, body) {
  const res = await fetch(path, body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!res.ok) {
    const text = await res.text();
    throw new Error(res.status + " " + text);
  }
  return res.json();
}

function showError(err) { $("#error").textContent = err ? String(err.message || err) : ""; }

// POST a streaming /generate and call onDelta for each piece; resolves with the final response.
async function streamGenerate(body, onStart, onDelta) {
  const res = await fetch("/generate", { method: "POST", headers: headers(), body: JSON.stringify({ ...body, stream: true }) });
  if (!res.ok) throw new Error(res.status + " " + await res.text());
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", final = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, cut).replace(/^data: /, "");
      buffer = buffer.slice(cut + 2);
      const event = JSON.parse(line);
      if (event.done) final = event.response;
      else if (event.delta !== undefined) onDelta(event.delta);
      else onStart(event);
    }
  }
  if (!final) throw new Error("the reply stream ended early");
  return final;
}

async function loadConversations() {
  const list = await api("/conversations");
  const ul = $("#conversations");
  ul.innerHTML = "";
  for (const c of list) {
    const li = document.createElement("li");
    li.textContent = c.title;
    li.dataset.id = c.conversation_id;
    if (c.conversation_id === state.conversationId) li.classList.add("active");
    li.onclick = () => openConversation(c.conversation_id);
    ul.appendChild(li);
  }
}

async function openConversation(id) {
  state.conversationId = id;
  if (id) localStorage.setItem("hominem_conversation", id); else localStorage.removeItem("hominem_conversation");
  const view = id ? await api("/conversations/" + encodeURIComponent(id)) : { messages: [] };
  render(view.messages);
  await loadConversations();
}

function bubble(role, text, extraClass) {
  const div = document.createElement("div");
  div.className = "msg " + role + (extraClass ? " " + extraClass : "");
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  div.appendChild(body);
  $("#messages").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function render(messages) {
  $("#messages").innerHTML = "";
  const drafts = {};
  for (const m of messages) if (m.role === "assistant") (drafts[m.parent_id] = drafts[m.parent_id] || []).push(m);
  for (const m of messages) {
    if (m.role !== "assistant") {
      const isCorrection = m.metadata && m.metadata.kind === "correction";
      const div = bubble("user", m.content, isCorrection ? "correction" : "");
      div.dataset.id = m.message_id;
      continue;
    }
    const siblings = drafts[m.parent_id];
    const cls = m.chosen === true ? "chosen" : m.chosen === false ? "rejected" : "";
    const div = bubble("assistant", m.content, cls);
    div.dataset.id = m.message_id;
    if (siblings.length > 1) {
      const tag = document.createElement("div");
      tag.className = "tag";
      tag.textContent = "reply " + (m.draft_index + 1) + " of " + siblings.length;
      div.prepend(tag);
    }
    div.appendChild(tools(m, siblings));
  }
}

function tools(m, siblings) {
  const bar = document.createElement("div");
  bar.className = "tools";
  for (const label of LABELS) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "label" + (m.labels.includes(label) ? " on" : "");
    b.dataset.label = label;
    b.textContent = label;
    b.onclick = async () => {
      const on = b.classList.contains("on");
      try {
        const res = await api("/feedback", on ? { message_id: m.message_id, remove_labels: [label] }
                                              : { message_id: m.message_id, labels: [label] });
        b.classList.toggle("on", res.labels.includes(label));
        m.labels = res.labels;
        showError(null);
      } catch (err) { showError(err); }
    };
    bar.appendChild(b);
  }
  const decided = siblings.some((s) => s.chosen !== null);
  if (siblings.length > 1 && !decided) {
    const pick = button("I prefer this one", "pick", async () => {
      for (const other of siblings) {
        if (other.message_id === m.message_id) continue;
        await api("/feedback", { chosen_message_id: m.message_id, rejected_message_id: other.message_id });
      }
      await openConversation(state.conversationId);
    });
    bar.appendChild(pick);
  }
  bar.appendChild(button("↻ regenerate", "regenerate", () => regenerate(m.parent_id)));
  bar.appendChild(button("reward", "show-reward", (ev) => {
    const host = ev.target.closest(".msg");
    const old = host.querySelector(".reward");
    if (old) { old.remove(); return; }
    const pre = document.createElement("pre");
    pre.className = "reward";
    const r = m.metadata.reward;
    pre.textContent = r ? JSON.stringify(r, null, 1) : "no reward model was served for this reply";
    host.appendChild(pre);
  }));
  bar.appendChild(button("correct…", "correct", (ev) => {
    const host = ev.target.closest(".msg");
    if (host.querySelector(".correction-box")) return;
    const box = document.createElement("form");
    box.className = "correction-box";
    const text = document.createElement("textarea");
    text.rows = 2;
    text.placeholder = "What should it have said?";
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.textContent = "Save correction";
    box.append(text, submit);
    box.onsubmit = async (e) => {
      e.preventDefault();
      if (!text.value.trim()) return;
      try {
        await api("/feedback", { message_id: m.message_id, correction: text.value });
        await openConversation(state.conversationId);
      } catch (err) { showError(err); }
    };
    host.appendChild(box);
    text.focus();
  }));
  return bar;
}

function button(text, cls, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = text;
  b.onclick = onclick;
  return b;
}

async function withBusy(work) {
  if (state.busy) return;
  state.busy = true;
  $("#send").disabled = true;
  try { await work(); showError(null); } catch (err) { showError(err); } finally {
    state.busy = false;
    $("#send").disabled = false;
  }
}

async function send(text) {
  await withBusy(async () => {
    bubble("user", text);
    const reply = bubble("assistant", "", "streaming");
    const body = { prompt: text };
    if (state.conversationId) body.conversation_id = state.conversationId;
    const final = await streamGenerate(body, (start) => { state.conversationId = start.conversation_id; },
      (delta) => { reply.querySelector(".text").textContent += delta; });
    await openConversation(final.conversation_id);
  });
}

async function regenerate(userMessageId) {
  await withBusy(async () => {
    const reply = bubble("assistant", "", "streaming");
    await streamGenerate({ regenerate: userMessageId }, () => {},
      (delta) => { reply.querySelector(".text").textContent += delta; });
    await openConversation(state.conversationId);
  });
}

async function showHealth() {
  try {
    const h = await api("/health");
    const s = h.serving || {};
    $("#health").textContent = "profile " + s.profile + " · adapter " + (s.adapter_version || "none")
      + " · reward model " + (s.reward_model_version || "none");
  } catch (err) { $("#health").textContent = ""; }
}

$("#composer").onsubmit = (e) => {
  e.preventDefault();
  const text = $("#prompt").value.trim();
  if (!text) return;
  $("#prompt").value = "";
  send(text);
};
$("#prompt").onkeydown = (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#composer").requestSubmit(); }
};
$("#new-chat").onclick = () => openConversation(null);

(async () => {
  await showHealth();
  try { await openConversation(localStorage.getItem("hominem_conversation")); }
  catch (err) { await openConversation(null); }
})();
