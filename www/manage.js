/*
 * manage.js - the web client's controls for groups (leave, members page by
 * page, remove, admins, rename, describe, hand over, dissolve), friends
 * (remove) and blocks, and the notices the server pushes about them (112, 118);
 * a conversation's history, page by page backwards (125), and deleting the
 * account with its password (127).  Loaded
 * after app.js, whose state and helpers it uses.  The server decides who
 * may do what: a refused action shows its error in the status line.
 */
'use strict';

const MEMBERS_PAGE = 20;

const members = { gid: 0, offset: 0, total: 0, list: [] };

/* ---- groups -------------------------------------------------------- */

function currentGroup() {
  return state.current && state.current[0] === 'g' ? Number(state.current.slice(1)) : 0;
}

function groupOp(gid, op, extra, what, onDone) {
  request(Object.assign({ msgid: MSG.GROUP_MANAGE, groupid: gid, op }, extra), onDone, what);
}

function dropGroup(gid) {
  state.groups = state.groups.filter((g) => g.id !== gid);
  closeConv(`g${gid}`);
  renderLists();
}

function membersLoad(gid, offset) {
  request({ msgid: MSG.GROUP_MEMBERS, groupid: gid, offset, limit: MEMBERS_PAGE },
    (m) => membersShow(m), 'members');
}

function membersShow(m) {
  if (m.groupid !== currentGroup()) return;
  members.gid = m.groupid;
  members.offset = m.offset;
  members.total = m.total;
  members.list = Array.isArray(m.members) ? m.members : [];
  const ul = $('members-list');
  ul.replaceChildren();
  for (const u of members.list) {
    const li = el('li');
    li.dataset.id = u.id;
    li.dataset.role = u.role;
    li.append(el('span', 'who', `${u.name} #${u.id} · ${u.role} · ${u.state}`));
    if (state.me && u.id !== state.me.id && u.role !== 'creator') {
      const rm = el('button', 'remove-btn', 'Remove');
      rm.type = 'button';
      rm.addEventListener('click', () => groupOp(members.gid, 'remove', { userid: u.id },
        `remove ${u.name}`, () => {
          const g = state.groups.find((x) => x.id === members.gid);
          if (g) g.users = parseList(g.users).filter((x) => x.id !== u.id);
          status(`removed ${u.name}`);
          showConv();
          membersReload();
        }));
      const adm = el('button', 'admin-btn', u.role === 'admin' ? 'Drop admin' : 'Make admin');
      adm.type = 'button';
      const op = u.role === 'admin' ? 'unadmin' : 'admin';
      adm.addEventListener('click', () => groupOp(members.gid, op, { userid: u.id },
        `${op} ${u.name}`, () => { status(`${u.name}: ${op} done`); membersReload(); }));
      const own = el('button', 'owner-btn', 'Hand over');
      own.type = 'button';
      own.title = 'make this member the creator (creator only)';
      own.addEventListener('click', () => groupOp(members.gid, 'transfer', { userid: u.id },
        `hand over to ${u.name}`, () => {
          handedOver(members.gid, state.me.id, u.id);
          status(`${u.name} now owns the group`);
          showConv();
          membersReload();
        }));
      li.append(rm, adm, own);
    }
    ul.append(li);
  }
  const last = members.offset + members.list.length;
  $('members-info').textContent = members.total === 0 ? '(none)'
    : `${members.list.length ? members.offset + 1 : 0}–${last} of ${members.total}`;
  $('members-prev').disabled = members.offset === 0;
  $('members-next').disabled = last >= members.total;
}

function membersReload() {
  if (members.gid && members.gid === currentGroup()) membersLoad(members.gid, members.offset);
}

$('members-prev').addEventListener('click', () =>
  membersLoad(members.gid, Math.max(0, members.offset - MEMBERS_PAGE)));
$('members-next').addEventListener('click', () =>
  membersLoad(members.gid, members.offset + MEMBERS_PAGE));

$('leave-btn').addEventListener('click', () => {
  const gid = currentGroup();
  if (gid) groupOp(gid, 'leave', {}, 'leave', () => { dropGroup(gid); status(`left group #${gid}`); });
});
$('dissolve-btn').addEventListener('click', () => {
  const gid = currentGroup();
  if (gid) groupOp(gid, 'dissolve', {}, 'dissolve', () => { dropGroup(gid); status(`dissolved group #${gid}`); });
});
onSubmit('rename-form', () => {
  const gid = currentGroup(), name = $('rename-input').value;
  if (!gid || name === '') return;
  groupOp(gid, 'rename', { groupname: name }, 'rename', () => {
    const g = state.groups.find((x) => x.id === gid);
    if (g) g.groupname = name;
    $('rename-input').value = '';
    renderLists();
    showConv();
    status(`group #${gid} renamed`);
  });
});
onSubmit('describe-form', () => {
  const gid = currentGroup(), desc = $('describe-input').value;
  if (!gid) return;
  groupOp(gid, 'describe', { groupdesc: desc }, 'describe', () => {
    const g = state.groups.find((x) => x.id === gid);
    if (g) g.groupdesc = desc;
    $('describe-input').value = '';
    showConv();
    status(`group #${gid} described`);
  });
});

/* The creator's role went from one member to another. */
function handedOver(gid, from, to) {
  const g = state.groups.find((x) => x.id === gid);
  if (!g) return;
  g.users = parseList(g.users).map((u) =>
    u.id === from ? Object.assign(u, { role: 'normal' }) : u.id === to ? Object.assign(u, { role: 'creator' }) : u);
}

const NOTICE_TEXT = {
  left: (by) => `${by} left`,
  removed: (by, who) => `${by} removed ${who}`,
  admin: (by, who) => `${by} made ${who} an admin`,
  unadmin: (by, who) => `${by} made ${who} no longer an admin`,
  renamed: (by, who, m) => `${by} renamed the group to “${m.groupname}”`,
  described: (by, who, m) => `${by} described the group: “${m.groupdesc}”`,
  owner: (by, who) => `${by} handed the group to ${who}`,
  dissolved: (by) => `${by} dissolved the group`
};

/* 112: a group changed; kept as a line in the group's conversation. */
function groupNotice(m, offline) {
  if (typeof m.groupid !== 'number' || !NOTICE_TEXT[m.event]) return;
  const gid = m.groupid, key = `g${gid}`;
  const g = state.groups.find((x) => x.id === gid);
  const by = userName(m.by), who = typeof m.userid === 'number' ? userName(m.userid) : '';
  const text = NOTICE_TEXT[m.event](by, who, m);
  const gone = m.event === 'dissolved' ||
    (m.event === 'removed' && state.me && m.userid === state.me.id);
  if (g && m.event === 'renamed' && typeof m.groupname === 'string') g.groupname = m.groupname;
  if (g && m.event === 'described' && typeof m.groupdesc === 'string') g.groupdesc = m.groupdesc;
  if (g && (m.event === 'removed' || m.event === 'left'))
    g.users = parseList(g.users).filter((u) => u.id !== (m.event === 'left' ? m.by : m.userid));
  if (m.event === 'owner' && typeof m.userid === 'number') handedOver(gid, m.by, m.userid);
  const label = g ? g.groupname : `group #${gid}`;
  status(`${label}: ${text}`);
  if (gone) { dropGroup(gid); return; }
  addNotice(key, text, m.time);
  if (offline) return;
  if (key === state.current) { showConv(); membersReload(); }
  renderLists();
}

/* ---- friends ------------------------------------------------------- */

function friendGone(id) {
  state.friends = state.friends.filter((f) => f.id !== id);
  renderLists();
  if (state.current === `u${id}`) showConv();
}

$('unfriend-btn').addEventListener('click', () => {
  const key = state.current;
  if (!key || key[0] !== 'u') return;
  const id = Number(key.slice(1)), name = userName(id);
  request({ msgid: MSG.FRIEND_REMOVE, friendid: id },
    () => { friendGone(id); status(`${name} is no longer a friend`); }, 'remove friend');
});

/* 118: a friend ended the friendship. */
function friendNotice(m) {
  if (m.event !== 'removed' || typeof m.userid !== 'number') return;
  const name = userName(m.userid);
  friendGone(m.userid);
  status(`${name} removed you as a friend`);
}

/* ---- blocks -------------------------------------------------------- */

function blocksLoad() {
  request({ msgid: MSG.BLOCK_LIST }, (m) => {
    const ul = $('blocks');
    ul.replaceChildren();
    for (const u of Array.isArray(m.blocked) ? m.blocked : []) {
      const li = el('li');
      li.dataset.id = u.id;
      li.append(el('span', 'who', `${u.name} #${u.id}`));
      const b = el('button', 'unblock-btn', 'Unblock');
      b.type = 'button';
      b.addEventListener('click', () => unblock(u.id));
      li.append(b);
      ul.append(li);
    }
    if (ul.children.length === 0) ul.append(el('li', 'none', 'nobody'));
  }, 'blocked users');
}

function block(id) {
  request({ msgid: MSG.BLOCK, userid: id }, () => {
    status(`blocked ${userName(id)}: their chats no longer reach you`);
    blocksLoad();
  }, 'block');
}

function unblock(id) {
  request({ msgid: MSG.UNBLOCK, userid: id }, () => {
    status(`unblocked ${userName(id)}`);
    blocksLoad();
  }, 'unblock');
}

/* A form of one id field: fn(id) once it holds a number. */
function idForm(form, input, what, fn) {
  onSubmit(form, () => {
    const id = Number($(input).value);
    if (!Number.isInteger(id) || id < 1) { status(`a ${what} id is a number`, true); return; }
    $(input).value = '';
    fn(id);
  });
}

idForm('block-form', 'block-id', 'user', block);
$('blocks-refresh-btn').addEventListener('click', blocksLoad);
$('block-btn').addEventListener('click', () => {
  if (state.current && state.current[0] === 'u') block(Number(state.current.slice(1)));
});

/* ---- joining and creating (no answer on success: the lists come with
 * a login answer) ------------------------------------------------------ */

idForm('friend-form', 'friend-id', 'user', (id) => {
  send({ msgid: MSG.ADD_FRIEND, id: state.me.id, friendid: id });
  refresh();
});
idForm('join-form', 'group-id', 'group', (id) => {
  send({ msgid: MSG.ADD_GROUP, id: state.me.id, groupid: id });
  refresh();
});
onSubmit('group-form', () => {
  send({ msgid: MSG.CREATE_GROUP, id: state.me.id, groupname: $('group-name').value,
    groupdesc: $('group-desc').value });
  $('group-name').value = '';
  $('group-desc').value = '';
  refresh();
});

/* ---- history: earlier messages, a page at a time --------------------- */

const HISTORY_PAGE = 50;

/* The button offers older messages until the server said there are none. */
function historyButton(c) {
  const b = $('history-btn');
  b.hidden = false;
  b.disabled = c.histDone === true;
  b.textContent = c.histDone ? 'No earlier messages' : 'Earlier messages';
}

/* A page (newest first) goes before what the conversation shows; a
 * message shown already (by its smid) is not shown twice. */
function historyShow(key, m) {
  const c = conv(key);
  const have = new Set(c.msgs.map((x) => x.smid).filter((x) => typeof x === 'number'));
  const older = [];
  for (const o of parseList(m.messages)) {
    if (typeof o.smid === 'number') {
      c.histBefore = o.smid;           // the oldest so far: the next page's cursor
      if (have.has(o.smid)) continue;
      state.seen.add(o.smid);
    }
    const mine = state.me && o.id === state.me.id;
    older.unshift({ mine, from: o.name, text: o.msg, time: o.time, smid: o.smid,
      history: true, state: mine ? 'sent' : undefined });
  }
  c.histDone = m.more !== true;
  c.msgs = older.concat(c.msgs);
  if (key !== state.current) return;
  const list = $('messages');
  list.prepend(...older.map(msgNode));
  historyButton(c);
  status(older.length ? `${older.length} earlier messages` : 'no earlier messages');
}

$('history-btn').addEventListener('click', () => {
  const key = state.current;
  if (!key) return;
  const c = conv(key), id = Number(key.slice(1));
  const req = { msgid: MSG.HISTORY, limit: HISTORY_PAGE };
  if (key[0] === 'u') req.toid = id; else req.groupid = id;
  if (c.histBefore !== undefined) req.before = c.histBefore;
  request(req, (m) => historyShow(key, m), 'history');
});

/* ---- deleting the account ------------------------------------------ */

$('delete-account-btn').addEventListener('click', () => {
  $('delete-form').hidden = false;
  $('delete-pass').value = '';
  $('delete-pass').focus();
});
$('delete-cancel-btn').addEventListener('click', () => { $('delete-form').hidden = true; });
onSubmit('delete-form', () => {
  const password = $('delete-pass').value;
  if (password === '') return;
  request({ msgid: MSG.DELETE_ACCOUNT, password }, () => {
    // the server logged this connection out; nothing of it is kept here
    $('delete-pass').value = '';
    state.me = null;
    signedOut('account deleted');
  }, 'delete account');
});
