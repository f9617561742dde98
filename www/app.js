/*
 * app.js - chatd's web client.  One WebSocket to the server that served
 * this page; one JSON request per text message (see chatd-protocol(7)).
 * Everything shown comes from the network or the user and goes into the
 * page as text (textContent), never as HTML.
 */
'use strict';

const MSG = {
  LOGIN: 1, LOGIN_ACK: 2, LOGOUT: 3, REG: 4, REG_ACK: 5, ONE_CHAT: 6,
  ADD_FRIEND: 7, CREATE_GROUP: 8, ADD_GROUP: 9, GROUP_CHAT: 10,
  ERROR: 100, PING: 101, PONG: 102, CHAT_ACK: 103
};
const PING_SECONDS = 60;         // below the server's idle_timeout

const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  open: false,
  me: null,                      // {id, name} once logged in
  creds: null,                   // what to log in with again (refresh, reconnect)
  friends: [],                   // [{id, name, state}]
  groups: [],                    // [{id, groupname, groupdesc, users:[...]}]
  convs: new Map(),              // "u12" / "g3" -> {msgs: [], unread}
  current: null,                 // key of the conversation shown
  pending: new Map(),            // cmid -> {msg, req}
  seen: new Set(),               // smids shown, to drop a repeat
  nextCmid: Date.now() * 1000,   // unique across reloads of the page
  refreshing: false,
  retry: 0,
  drops: 0,                      // connections lost (shown in the status)
  logins: 0                      // successful login answers
};

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
    state.retry = 0;
    setConn(true);
    status('connected');
    if (state.creds) login(state.creds);   // after a reconnect
  };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { status('bad message from server', true); return; }
    if (m && typeof m === 'object') handle(m);
  };
  ws.onclose = (ev) => {
    state.open = false;
    state.drops++;
    setConn(false);
    if (state.ws !== ws) return;
    const wait = Math.min(30, 2 ** state.retry++);
    status(`disconnected (${ev.code}${ev.reason ? ': ' + ev.reason : ''}); retrying in ${wait} s`, true);
    setTimeout(connect, wait * 1000);
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

setInterval(() => { if (state.open) send({ msgid: MSG.PING }); }, PING_SECONDS * 1000);

/* ---- requests ------------------------------------------------------ */

function login(creds) {
  const req = { msgid: MSG.LOGIN, password: creds.password };
  if (/^[0-9]+$/.test(creds.who)) req.id = Number(creds.who); else req.name = creds.who;
  state.creds = creds;
  send(req);
}

/* The lists come only with a login answer: log out and in again. */
function refresh() {
  if (!state.me || !state.creds) return;
  state.refreshing = true;
  send({ msgid: MSG.LOGOUT });
  login(state.creds);
}

function sendChat(text) {
  const key = state.current;
  if (!key || !state.me) return;
  const id = Number(key.slice(1));
  const cmid = state.nextCmid++;
  const req = key[0] === 'u'
    ? { msgid: MSG.ONE_CHAT, id: state.me.id, name: state.me.name, toid: id, msg: text, time: timeNow(), cmid }
    : { msgid: MSG.GROUP_CHAT, id: state.me.id, name: state.me.name, groupid: id, msg: text, time: timeNow(), cmid };
  const msg = { mine: true, from: state.me.name, text, time: req.time, state: 'sending', cmid };
  state.pending.set(cmid, { msg, req });
  addMsg(key, msg);
  if (send(req)) setMsgState(msg, 'sent');
}

/* ---- answers and pushed messages ----------------------------------- */

function parseList(list) {
  const out = [];
  for (const s of list || []) {
    try { out.push(typeof s === 'string' ? JSON.parse(s) : s); } catch (e) { /* skip */ }
  }
  return out;
}

function handle(m) {
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
      incoming(`u${m.id}`, m, false);
      break;
    case MSG.GROUP_CHAT:
      incoming(`g${m.groupid}`, m, false);
      break;
    case MSG.CHAT_ACK: {
      const p = state.pending.get(m.cmid);
      if (p) { state.pending.delete(m.cmid); setMsgState(p.msg, 'delivered'); }
      break;
    }
    case MSG.ERROR:
      status(`error ${m.errno}: ${m.errmsg || ''}`, true);
      break;
    default:
      break;          // PONG and anything newer
  }
}

function onLogin(m) {
  if (m.errno !== 0) {
    if (!state.refreshing) { state.creds = null; state.me = null; }
    state.refreshing = false;
    status(`login failed: ${m.errmsg || 'error ' + m.errno}`, true);
    return;
  }
  const first = !state.me;
  state.logins++;
  state.me = { id: m.id, name: m.name };
  state.friends = parseList(m.friends);
  state.groups = parseList(m.groups);
  $('auth').hidden = true;
  $('app').hidden = false;
  $('refresh-btn').hidden = false;
  $('logout-btn').hidden = false;
  $('me').textContent = `${m.name} (id ${m.id})`;
  for (const o of parseList(m.offlinemsg)) {
    if (o.msgid === MSG.ONE_CHAT) incoming(`u${o.id}`, o, true);
    else if (o.msgid === MSG.GROUP_CHAT) incoming(`g${o.groupid}`, o, true);
  }
  // chats not acknowledged before a reconnect go again: the same cmid
  // is acknowledged once and never delivered twice
  if (!state.refreshing) for (const p of state.pending.values()) send(p.req);
  state.refreshing = false;
  renderLists();
  if (first) status(`logged in as ${m.name}`);
}

function incoming(key, o, offline) {
  if (typeof o.smid === 'number') {
    if (state.seen.has(o.smid)) return;
    state.seen.add(o.smid);
  }
  addMsg(key, { mine: false, from: o.name, text: o.msg, time: o.time, offline });
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
  else c.unread++;
  if (key === state.current) $('messages').scrollTop = $('messages').scrollHeight;
  renderLists();
}

function setMsgState(msg, s) {
  msg.state = s;
  if (msg.node) {
    const st = msg.node.querySelector('.state');
    st.textContent = s === 'delivered' ? 'delivered ✓✓' : s === 'sent' ? 'sent ✓' : 'sending…';
    st.className = 'state ' + s;
    msg.node.dataset.state = s;
  }
}

function msgNode(msg) {
  const li = el('li', 'msg' + (msg.mine ? ' mine' : '') + (msg.offline ? ' offline' : ''));
  if (!msg.mine) li.append(el('span', 'from', msg.from === undefined ? '?' : msg.from));
  li.append(el('span', 'text', msg.text === undefined ? '' : msg.text));
  const meta = el('span', 'meta', msg.time ? String(msg.time) + ' ' : '');
  if (msg.mine) meta.append(el('span', 'state ' + msg.state));
  li.append(meta);
  msg.node = li;
  if (msg.mine) setMsgState(msg, msg.state);
  return li;
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
  const c = conv(key);
  c.unread = 0;
  $('chat-title').textContent = nameOf(key);
  const g = key[0] === 'g' ? state.groups.find((x) => x.id === Number(key.slice(1))) : null;
  $('chat-members').textContent = g
    ? 'members: ' + parseList(g.users).map((u) => `${u.name} (${u.state}${u.role === 'creator' ? ', creator' : ''})`).join(', ')
    : '';
  const list = $('messages');
  list.replaceChildren(...c.msgs.map(msgNode));
  list.scrollTop = list.scrollHeight;
  $('msg-input').disabled = false;
  $('send-btn').disabled = false;
  $('msg-input').focus();
  renderLists();
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
    const users = parseList(g.users);
    const li = item(`g${g.id}`, `${g.groupname} #${g.id}`,
      el('span', 'members', users.map((u) => u.name).join(', ')));
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
  login({ who: $('login-name').value.trim(), password: $('login-pass').value });
});
onSubmit('friend-form', () => {
  const id = Number($('friend-id').value);
  if (!Number.isInteger(id) || id < 1) { status('a user id is a number', true); return; }
  send({ msgid: MSG.ADD_FRIEND, id: state.me.id, friendid: id });
  $('friend-id').value = '';
  refresh();
});
onSubmit('join-form', () => {
  const id = Number($('group-id').value);
  if (!Number.isInteger(id) || id < 1) { status('a group id is a number', true); return; }
  send({ msgid: MSG.ADD_GROUP, id: state.me.id, groupid: id });
  $('group-id').value = '';
  refresh();
});
onSubmit('group-form', () => {
  send({ msgid: MSG.CREATE_GROUP, id: state.me.id, groupname: $('group-name').value,
    groupdesc: $('group-desc').value });
  $('group-name').value = '';
  $('group-desc').value = '';
  refresh();
});
onSubmit('send-form', () => {
  const text = $('msg-input').value;
  if (text === '') return;
  $('msg-input').value = '';
  sendChat(text);
});
$('refresh-btn').addEventListener('click', refresh);
$('logout-btn').addEventListener('click', () => {
  send({ msgid: MSG.LOGOUT });
  state.me = null;
  state.creds = null;
  state.pending.clear();
  state.convs.clear();
  state.current = null;
  $('app').hidden = true;
  $('auth').hidden = false;
  $('refresh-btn').hidden = true;
  $('logout-btn').hidden = true;
  $('me').textContent = '';
  status('logged out');
});

connect();
