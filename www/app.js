/*
 * app.js - chatd's web client: the connection, logging in (with a resume
 * token), a gap-free resume after a reconnect (RESUME, 128), chats, typing
 * notices and read receipts.  manage.js holds the
 * group, friend and block controls.  One WebSocket to the server that
 * served this page; one JSON request per text message (see
 * chatd-protocol(7)).  Everything shown comes from the network or the user
 * and goes into the page as text (textContent), never as HTML.
 */
'use strict';

const MSG = {
  LOGIN: 1, LOGIN_ACK: 2, LOGOUT: 3, REG: 4, REG_ACK: 5, ONE_CHAT: 6,
  ADD_FRIEND: 7, CREATE_GROUP: 8, ADD_GROUP: 9, GROUP_CHAT: 10,
  ERROR: 100, PING: 101, PONG: 102, CHAT_ACK: 103,
  GROUP_MANAGE: 108, DONE: 109, GROUP_MEMBERS: 110, GROUP_MEMBERS_ACK: 111,
  GROUP_NOTICE: 112, FRIEND_REMOVE: 113, BLOCK: 114, UNBLOCK: 115,
  BLOCK_LIST: 116, BLOCK_LIST_ACK: 117, FRIEND_NOTICE: 118, TYPING: 119,
  READ: 120, LOGOUT_ALL: 122, ACCOUNT_ACK: 124, HISTORY: 125,
  HISTORY_ACK: 126, DELETE_ACCOUNT: 127, RESUME: 128, RESUME_ACK: 129
};
const ERR_TOKEN = 30;
const ERR_RATE = 25;
const ERR_RESUME_GONE = 31;      // RESUME too late: what was missed may be lost
const RESUME_WAIT_MS = 30000;    // a resume unanswered this long is given up
const RESUME_RETRIES = 3;        // RESUME refused as too fast: tried again
const PING_SECONDS = 60;         // below the server's idle_timeout
const TYPING_EVERY_MS = 3000;    // we send at most one notice per this
const TYPING_SHOWN_MS = 5000;    // a notice is shown this long
const READ_EVERY_MS = 400;       // the server takes one receipt per 0.2 s
const BACKOFF_MAX_MS = 30000;
const LOGIN_RETRIES = 5;         // token logins tried again on "already online"
const TOKEN_KEY = 'chatd.token';

const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  open: false,
  me: null,                      // {id, name} once logged in
  creds: null,                   // {who, password}: memory only, the fallback
  token: loadToken(),            // resume token (sessionStorage, see README)
  loginKind: null,               // 'token' or 'password': the login in flight
  friends: [],                   // [{id, name, state}]
  groups: [],                    // [{id, groupname, groupdesc, users:[...]}]
  convs: new Map(),              // "u12" / "g3" -> {msgs: [], unread, ...}
  current: null,                 // key of the conversation shown
  pending: new Map(),            // cmid -> {msg, req}
  seen: new Set(),               // smids shown, to drop a repeat
  lastSmid: 0,                   // smid of the last chat shown live: RESUME's "since"
  resuming: false,               // a RESUME asked, its last page not in yet
  held: [],                      // chats that came meanwhile: [{key, o, offline}]
  resumeTimer: null,
  resumeRetries: 0,
  resumeReq: null,               // the RESUME in flight, asked again on errno 25
  resumeLimit: 200,              // chats per RESUME page (the server's default)
  ops: [],                       // requests awaiting one answer, in order
  typing: new Map(),             // key -> Map(user id -> {name, until})
  reads: new Map(),              // uid -> smid to acknowledge as read
  readTimer: null,
  lastRead: 0,
  nextCmid: Date.now() * 1000,   // unique across reloads of the page
  refreshing: false,
  retry: 0,
  loginRetries: 0,               // token logins refused for a while
  drops: 0,                      // connections lost (shown in the status)
  logins: 0                      // successful login answers
};

function loadToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
}

function saveToken(t) {
  state.token = t;
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* storage refused: the token lives in memory only */ }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function status(text, isError) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', !!isError);
}

function timeNow() {
  const d = new Date(), p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/* ---- connection ---------------------------------------------------- */

function connect() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    state.open = true;
    setConn(true);
    status('connected');
    if (state.token || state.creds) login();   // a reconnect or a reload
  };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { status('bad message from server', true); return; }
    if (m && typeof m === 'object') handle(m, false);
  };
  ws.onclose = (ev) => {
    state.open = false;
    state.drops++;
    state.ops = [];              // their answers will not come
    resumeLost();
    setConn(false);
    if (state.ws !== ws) return;
    // jittered exponential backoff: many pages dropped at once by a
    // restarting server do not come back in step
    const base = Math.min(BACKOFF_MAX_MS, 500 * 2 ** state.retry++);
    const wait = Math.round(base / 2 + Math.random() * base / 2);
    status(`disconnected (${ev.code}${ev.reason ? ': ' + ev.reason : ''}); ` +
      `retrying in ${(wait / 1000).toFixed(1)} s`, true);
    setTimeout(connect, wait);
  };
}

function setConn(on) {
  const c = $('conn');
  c.textContent = on ? 'connected' : 'offline';
  c.classList.toggle('on', on);
  c.classList.toggle('off', !on);
}

function send(obj) {
  if (!state.open) return false;
  state.ws.send(JSON.stringify(obj));
  return true;
}

/* A request answered by exactly one message (DONE, a list or an error);
 * answers come in the order of the requests. */
function request(obj, onDone, what) {
  if (!send(obj)) { status(`${what}: not connected`, true); return; }
  state.ops.push({ msgid: obj.msgid, onDone, what });
}

function answered(refmsgid, m) {
  const i = state.ops.findIndex((o) => o.msgid === refmsgid);
  if (i < 0) return false;
  const op = state.ops.splice(i, 1)[0];
  if (m.msgid === MSG.ERROR) status(`${op.what}: ${explain(m)}`, true);
  else if (op.onDone) op.onDone(m);
  return true;
}

function explain(m) {
  const why = {
    19: 'no such user', 20: 'no such group', 21: 'not a member of the group',
    22: 'not allowed', 23: 'a group with this name exists', 25: 'too many requests'
  }[m.errno];
  return `error ${m.errno}: ${why || m.errmsg || ''}`;
}

setInterval(() => { if (state.open) send({ msgid: MSG.PING }); }, PING_SECONDS * 1000);

/* ---- logging in ---------------------------------------------------- */

/* With a token when there is one; the password only when the token is
 * refused (or there is none yet).  Either way a fresh token is asked for. */
function login() {
  let req;
  if (state.token) {
    req = { msgid: MSG.LOGIN, token: state.token };
    state.loginKind = 'token';
  } else if (state.creds) {
    req = { msgid: MSG.LOGIN, password: state.creds.password, token: true };
    if (/^[0-9]+$/.test(state.creds.who)) req.id = Number(state.creds.who);
    else req.name = state.creds.who;
    state.loginKind = 'password';
  } else return;
  send(req);
}

/* The lists come only with a login answer: log out and in again. */
function refresh() {
  if (!state.me) return;
  state.refreshing = true;
  send({ msgid: MSG.LOGOUT });
  login();
}

function loginFailed(m) {
  const kind = state.loginKind;
  state.loginKind = null;
  if (kind === 'token' && m.errno === ERR_TOKEN) {
    saveToken(null);
    if (state.creds) { login(); return; }
  } else if (kind === 'token' && [2, 24, 25, 29].includes(m.errno) &&
      state.loginRetries++ < LOGIN_RETRIES) {
    // a reconnect or reload racing the old session's end, or a busy server
    setTimeout(() => { if (state.open && !state.loginKind) login(); }, 500 + Math.random() * 1000);
    return;
  } else if (m.errno === 29 && typeof m.retryms === 'number' && state.creds) {
    setTimeout(() => { if (state.open && !state.loginKind) login(); }, m.retryms);
    return;
  }
  if (!state.refreshing || kind === 'token') { state.creds = null; showAuth(); }
  state.refreshing = false;
  status(`login failed: ${m.errmsg || 'error ' + m.errno}`, true);
}

function showAuth() {
  state.me = null;
  $('app').hidden = true;
  $('auth').hidden = false;
  $('refresh-btn').hidden = true;
  $('logout-btn').hidden = true;
  $('delete-account-btn').hidden = true;
  $('delete-form').hidden = true;
  $('me').textContent = '';
}

function onLogin(m) {
  if (m.errno !== 0) { loginFailed(m); return; }
  const first = !state.me;
  // a token login on a new connection asks for what the old one missed
  // (after a drop: the token's, or the password's when it was refused)
  const resume = !first && !state.refreshing && state.lastSmid > 0;
  state.logins++;
  state.retry = 0;
  state.loginRetries = 0;
  state.loginKind = null;
  if (typeof m.token === 'string') saveToken(m.token);
  state.me = { id: m.id, name: m.name };
  state.friends = parseList(m.friends);
  state.groups = parseList(m.groups);
  $('auth').hidden = true;
  $('app').hidden = false;
  $('refresh-btn').hidden = false;
  $('logout-btn').hidden = false;
  $('delete-account-btn').hidden = false;
  $('me').textContent = `${m.name} (id ${m.id})`;
  if (resume) resumeStart();
  else if (!state.resuming) releaseHeld();
  for (const o of parseList(m.offlinemsg)) handle(o, true);
  // chats not acknowledged before a reconnect go again: the same cmid
  // is acknowledged once and never delivered twice
  if (!state.refreshing) for (const p of state.pending.values()) send(p.req);
  state.refreshing = false;
  renderLists();
  if (state.current) showConv();
  if (first) status(`logged in as ${m.name}`);
}

/* ---- answers and pushed messages ----------------------------------- */

function parseList(list) {
  const out = [];
  for (const s of list || []) {
    try { out.push(typeof s === 'string' ? JSON.parse(s) : s); } catch (e) { /* skip */ }
  }
  return out;
}

function handle(m, offline) {
  switch (m.msgid) {
    case MSG.REG_ACK:
      if (m.errno === 0) {
        status(`registered: your id is ${m.id}; log in with your name or id`);
        $('login-name').value = $('reg-name').value;
        $('login-pass').value = $('reg-pass').value;
      } else status(`registration failed: ${m.errmsg || 'error ' + m.errno}`, true);
      break;
    case MSG.LOGIN_ACK:
      onLogin(m);
      break;
    case MSG.ONE_CHAT:
      chatIn(`u${m.id}`, m, offline);
      break;
    case MSG.GROUP_CHAT:
      chatIn(`g${m.groupid}`, m, offline);
      break;
    case MSG.CHAT_ACK: {
      const p = state.pending.get(m.cmid);
      if (p) {
        state.pending.delete(m.cmid);
        p.msg.smid = m.smid;
        setMsgState(p.msg, 'delivered');
      }
      break;
    }
    case MSG.RESUME_ACK:
      resumePage(m);
      break;
    case MSG.ERROR:
      if (m.refmsgid === MSG.RESUME) { resumeRefused(m); break; }
      if (answered(m.refmsgid, m)) break;
      if (m.refmsgid === MSG.READ) break;      // a later receipt covers it
      status(explain(m), true);
      break;
    case MSG.DONE:
      answered(m.refmsgid, m);
      break;
    case MSG.GROUP_MEMBERS_ACK:
      answered(MSG.GROUP_MEMBERS, m);
      break;
    case MSG.BLOCK_LIST_ACK:
      answered(MSG.BLOCK_LIST, m);
      break;
    case MSG.HISTORY_ACK:
      answered(MSG.HISTORY, m);
      break;
    case MSG.ACCOUNT_ACK:
      answered(m.refmsgid, m);  // DELETE_ACCOUNT's; LOGOUT_ALL's has none waiting
      break;
    case MSG.GROUP_NOTICE:
      groupNotice(m, offline);
      break;
    case MSG.FRIEND_NOTICE:
      friendNotice(m);
      break;
    case MSG.TYPING:
      typingSeen(m);
      break;
    case MSG.READ:
      readSeen(m);
      break;
    default:
      break;          // PONG and anything newer
  }
}

/* A chat pushed or brought by the login: held while a resume is answered. */
function chatIn(key, o, offline) {
  if (state.resuming) state.held.push({ key, o, offline });
  else incoming(key, o, offline);
}

function incoming(key, o, offline) {
  if (typeof o.smid === 'number') {
    if (state.seen.has(o.smid)) return;
    state.seen.add(o.smid);
    state.lastSmid = o.smid;
  }
  typingGone(key, o.id);
  addMsg(key, { mine: false, from: o.name, text: o.msg, time: o.time, offline,
    smid: o.smid, receipt: o.receipt === true && key[0] === 'u' });
  if (key === state.current) readNow();
}

/* ---- resuming: every chat once, in order, after a reconnect ---------
 * The answer's pages list what reached us after the last chat shown
 * (the first page repeats a window before it: dropped by smid); chats
 * pushed meanwhile and the login's offline ones are held until the last
 * page is shown, then shown unless a page had them. */

function resumeStart() {
  state.resuming = true;
  state.resumeRetries = 0;
  resumeAsk({ msgid: MSG.RESUME, since: state.lastSmid, limit: state.resumeLimit });
}

function resumeAsk(req) {
  clearTimeout(state.resumeTimer);
  state.resumeTimer = setTimeout(() => {
    if (!state.resuming) return;
    status('no answer to the resume: showing what came since', true);
    releaseHeld();
  }, RESUME_WAIT_MS);
  state.resumeReq = req;
  if (!send(req)) resumeLost();
}

function resumePage(m) {
  if (!state.resuming) return;
  let last = 0;
  for (const o of parseList(m.messages)) {
    if (typeof o.smid === 'number') last = o.smid;
    if (o.msgid === MSG.ONE_CHAT) incoming(`u${o.id}`, o, true);
    else if (o.msgid === MSG.GROUP_CHAT) incoming(`g${o.groupid}`, o, true);
  }
  if (m.more === true && last > 0) resumeAsk({ msgid: MSG.RESUME, after: last, limit: state.resumeLimit });
  else releaseHeld();
}

function resumeRefused(m) {
  if (!state.resuming) return;
  if (m.errno === ERR_RATE && state.resumeRetries++ < RESUME_RETRIES) {
    const req = state.resumeReq;
    setTimeout(() => { if (state.resuming) resumeAsk(req); }, 1000);
    return;
  }
  status(m.errno === ERR_RESUME_GONE
    ? 'some earlier messages may be missing: use Earlier messages'
    : `resume: ${m.errmsg || 'error ' + m.errno}`, true);
  releaseHeld();
}

/* The resume is over: what was held, in the order it came. */
function releaseHeld() {
  clearTimeout(state.resumeTimer);
  state.resuming = false;
  const held = state.held;
  state.held = [];
  for (const h of held) incoming(h.key, h.o, h.offline);
}

/* The connection went mid-resume: the held chats stay held, and the
 * next resume names the last chat shown. */
function resumeLost() {
  clearTimeout(state.resumeTimer);
  state.resuming = false;
}

/* ---- typing notices: live only, never kept with the messages -------- */

function typingSend() {
  const key = state.current;
  if (!key || !state.me || $('msg-input').value === '') return;
  const c = conv(key), now = Date.now();
  if (now - (c.typingSent || 0) < TYPING_EVERY_MS) return;
  c.typingSent = now;
  const id = Number(key.slice(1));
  send(key[0] === 'u' ? { msgid: MSG.TYPING, toid: id } : { msgid: MSG.TYPING, groupid: id });
}

function typingSeen(m) {
  if (typeof m.id !== 'number' || (state.me && m.id === state.me.id)) return;
  const key = typeof m.groupid === 'number' ? `g${m.groupid}` : `u${m.id}`;
  if (!state.typing.has(key)) state.typing.set(key, new Map());
  state.typing.get(key).set(m.id, { name: String(m.name), until: Date.now() + TYPING_SHOWN_MS });
  showTyping();
  setTimeout(showTyping, TYPING_SHOWN_MS + 50);
}

function typingGone(key, id) {
  const t = state.typing.get(key);
  if (t && t.delete(id)) showTyping();
}

function showTyping() {
  const t = state.current && state.typing.get(state.current);
  const now = Date.now(), names = [];
  if (t) {
    for (const [id, v] of t) {
      if (v.until > now) names.push(v.name); else t.delete(id);
    }
  }
  $('typing').textContent = names.length === 0 ? ''
    : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}

/* ---- read receipts: one-to-one chats that asked for one ------------- */

/* The open conversation, when the page is visible, is read up to its
 * latest chat that asked for a receipt. */
function readNow() {
  const key = state.current;
  if (!key || key[0] !== 'u' || document.visibilityState !== 'visible') return;
  const c = conv(key);
  for (let i = c.msgs.length - 1; i >= 0; i--) {
    const msg = c.msgs[i];
    if (msg.mine || typeof msg.smid !== 'number') continue;
    if (!msg.receipt || c.readSent === msg.smid) return;
    c.readSent = msg.smid;
    state.reads.set(Number(key.slice(1)), msg.smid);
    flushReads();
    return;
  }
}

/* The server takes one receipt per 0.2 s: send them spaced, the latest
 * per user only. */
function flushReads() {
  if (state.readTimer) return;
  const wait = Math.max(0, state.lastRead + READ_EVERY_MS - Date.now());
  state.readTimer = setTimeout(() => {
    state.readTimer = null;
    const first = state.reads.entries().next();
    if (first.done) return;
    const [uid, upto] = first.value;
    state.reads.delete(uid);
    state.lastRead = Date.now();
    send({ msgid: MSG.READ, toid: uid, upto });
    if (state.reads.size > 0) flushReads();
  }, wait);
}

/* Our chats to the reader, up to the one with smid upto, are read. */
function readSeen(m) {
  if (typeof m.id !== 'number' || typeof m.upto !== 'number') return;
  const key = `u${m.id}`, c = conv(key);
  let last = -1;
  c.msgs.forEach((msg, i) => { if (msg.mine && msg.smid === m.upto) last = i; });
  let shown = null;
  c.msgs.forEach((msg, i) => {
    if (!msg.mine || typeof msg.smid !== 'number') return;
    if (last >= 0 ? i <= last : msg.smid <= m.upto) { setMsgState(msg, 'read'); shown = msg; }
  });
  if (shown) c.readMark = `${m.name || 'user #' + m.id} read up to “${shown.text}” (${shown.time})`;
  if (key === state.current) $('read-mark').textContent = c.readMark || '';
}

document.addEventListener('visibilitychange', readNow);

/* ---- chats --------------------------------------------------------- */

function sendChat(text) {
  const key = state.current;
  if (!key || !state.me) return;
  const id = Number(key.slice(1));
  const cmid = state.nextCmid++;
  const req = key[0] === 'u'
    ? { msgid: MSG.ONE_CHAT, id: state.me.id, name: state.me.name, toid: id, msg: text, time: timeNow(), cmid, receipt: true }
    : { msgid: MSG.GROUP_CHAT, id: state.me.id, name: state.me.name, groupid: id, msg: text, time: timeNow(), cmid };
  const msg = { mine: true, from: state.me.name, text, time: req.time, state: 'sending', cmid };
  state.pending.set(cmid, { msg, req });
  conv(key).typingSent = 0;
  addMsg(key, msg);
  if (send(req)) setMsgState(msg, 'sent');
}

/* ---- the page ------------------------------------------------------ */

function conv(key) {
  if (!state.convs.has(key)) state.convs.set(key, { msgs: [], unread: 0 });
  return state.convs.get(key);
}

function addMsg(key, msg) {
  const c = conv(key);
  c.msgs.push(msg);
  if (key === state.current) $('messages').append(msgNode(msg));
  else if (!msg.notice) c.unread++;
  if (key === state.current) $('messages').scrollTop = $('messages').scrollHeight;
  renderLists();
}

/* A line in a conversation that is no chat: a group's change. */
function addNotice(key, text, time) {
  addMsg(key, { notice: true, text, time });
}

const STATE_TEXT = { sending: 'sending…', sent: 'sent ✓', delivered: 'delivered ✓✓', read: 'read ✓✓' };

function setMsgState(msg, s) {
  if (msg.state === 'read' && s !== 'read') return;
  msg.state = s;
  if (msg.node) {
    const st = msg.node.querySelector('.state');
    st.textContent = STATE_TEXT[s] || s;
    st.className = 'state ' + s;
    msg.node.dataset.state = s;
  }
}

function msgNode(msg) {
  const li = el('li', 'msg' + (msg.mine ? ' mine' : '') + (msg.offline ? ' offline' : '') +
    (msg.notice ? ' notice' : ''));
  if (!msg.mine && !msg.notice) li.append(el('span', 'from', msg.from === undefined ? '?' : msg.from));
  li.append(el('span', 'text', msg.text === undefined ? '' : msg.text));
  const meta = el('span', 'meta', msg.time ? String(msg.time) + ' ' : '');
  if (msg.mine) meta.append(el('span', 'state ' + msg.state));
  li.append(meta);
  msg.node = li;
  if (msg.mine) setMsgState(msg, msg.state);
  return li;
}

function userName(id) {
  const f = state.friends.find((x) => x.id === id);
  if (f) return f.name;
  for (const g of state.groups) {
    const u = parseList(g.users).find((x) => x.id === id);
    if (u) return u.name;
  }
  return state.me && state.me.id === id ? state.me.name : `user #${id}`;
}

/* A group's first members, then how many more (the page lists them all). */
function shortList(g, n, fmt) {
  const users = parseList(g.users);
  const total = Math.max(users.length, typeof g.userstotal === 'number' ? g.userstotal : 0);
  const shown = users.slice(0, n).map(fmt).join(', ');
  return total > n ? `${shown} and ${total - n} more` : shown;
}

function nameOf(key) {
  const id = Number(key.slice(1));
  if (key[0] === 'u') {
    const f = state.friends.find((x) => x.id === id);
    return f ? `${f.name} (#${id})` : `user #${id}`;
  }
  const g = state.groups.find((x) => x.id === id);
  return g ? `${g.groupname} (group #${id})` : `group #${id}`;
}

function open(key) {
  state.current = key;
  conv(key).unread = 0;
  const list = $('messages');
  list.replaceChildren(...conv(key).msgs.map(msgNode));
  list.scrollTop = list.scrollHeight;
  $('msg-input').disabled = false;
  $('send-btn').disabled = false;
  $('msg-input').focus();
  showConv();
  if (key[0] === 'g') membersLoad(Number(key.slice(1)), 0);
  renderLists();
  readNow();
}

/* The header of the open conversation: title, group details, controls. */
function showConv() {
  const key = state.current;
  if (!key) return;
  const c = conv(key);
  const g = key[0] === 'g' ? state.groups.find((x) => x.id === Number(key.slice(1))) : null;
  $('chat-title').textContent = nameOf(key);
  $('chat-desc').textContent = g && g.groupdesc ? g.groupdesc : '';
  $('chat-members').textContent = g
    ? 'members: ' + shortList(g, 8, (u) => `${u.name} (${u.state}${u.role === 'creator' ? ', creator' : ''})`)
    : '';
  $('user-actions').hidden = key[0] !== 'u';
  $('unfriend-btn').hidden = !state.friends.some((f) => `u${f.id}` === key);
  $('group-panel').hidden = !g;
  historyButton(c);
  $('read-mark').textContent = c.readMark || '';
  showTyping();
}

function closeConv(key) {
  state.convs.delete(key);
  if (state.current !== key) return;
  state.current = null;
  $('chat-title').textContent = 'Pick a friend or a group';
  for (const id of ['chat-desc', 'chat-members', 'read-mark', 'typing']) $(id).textContent = '';
  $('messages').replaceChildren();
  $('user-actions').hidden = true;
  $('group-panel').hidden = true;
  $('history-btn').hidden = true;
  $('msg-input').disabled = true;
  $('send-btn').disabled = true;
}

function item(key, label, extra) {
  const li = el('li');
  li.dataset.key = key;
  li.dataset.id = key.slice(1);
  li.append(el('span', 'name', label));
  if (extra) li.append(extra);
  const c = state.convs.get(key);
  if (c && c.unread > 0) li.append(el('span', 'unread', c.unread));
  if (key === state.current) li.classList.add('active');
  li.addEventListener('click', () => open(key));
  return li;
}

function renderLists() {
  const fl = $('friends'), gl = $('groups');
  const keys = new Set();
  fl.replaceChildren();
  for (const f of state.friends) {
    keys.add(`u${f.id}`);
    const li = item(`u${f.id}`, `${f.name} #${f.id}`, el('span', 'state ' + f.state, f.state));
    li.dataset.state = f.state;
    fl.append(li);
  }
  // someone who wrote to us without being a friend still gets a line
  for (const key of state.convs.keys())
    if (key[0] === 'u' && !keys.has(key)) fl.append(item(key, nameOf(key)));
  gl.replaceChildren();
  for (const g of state.groups) {
    const li = item(`g${g.id}`, `${g.groupname} #${g.id}`,
      el('span', 'members', shortList(g, 4, (u) => u.name)));
    gl.append(li);
  }
  if (state.current) $('chat-title').textContent = nameOf(state.current);
}

/* ---- forms --------------------------------------------------------- */

function onSubmit(id, fn) {
  $(id).addEventListener('submit', (ev) => { ev.preventDefault(); fn(); });
}

onSubmit('reg-form', () => {
  send({ msgid: MSG.REG, name: $('reg-name').value, password: $('reg-pass').value });
});
onSubmit('login-form', () => {
  state.me = null;
  saveToken(null);
  state.creds = { who: $('login-name').value.trim(), password: $('login-pass').value };
  login();
});
onSubmit('send-form', () => {
  const text = $('msg-input').value;
  if (text === '') return;
  $('msg-input').value = '';
  sendChat(text);
});
$('msg-input').addEventListener('input', typingSend);
$('refresh-btn').addEventListener('click', refresh);
/* Logging out ends every resume token of the user (122), so a token
 * left behind in this tab is worth nothing. */
$('logout-btn').addEventListener('click', () => {
  send(state.token ? { msgid: MSG.LOGOUT_ALL } : { msgid: MSG.LOGOUT });
  signedOut('logged out');
});

/* Nothing of the session is kept in the page: token, password, chats. */
function signedOut(text) {
  saveToken(null);
  resumeLost();
  state.held = [];
  state.lastSmid = 0;
  state.creds = null;
  state.pending.clear();
  state.convs.clear();
  closeConv(state.current);
  showAuth();
  status(text);
}

document.addEventListener('DOMContentLoaded', connect);
