-- chatd SQLite schema, version 4.
--
-- Built into chatd (src/sqlite_schema.h) and run at every start inside
-- one BEGIN IMMEDIATE, so everything here must be idempotent.  To
-- change the layout: bump user_version here and SQ_SCHEMA_VERSION in
-- store_sqlite.c; a new table needs nothing more (IF NOT EXISTS), a
-- change to an existing one a step in sqlite-upgrade.sql, which runs
-- first.  A node refuses a file whose version is newer than it knows.
--
-- Text is stored as given (any bytes, embedded NUL included) and
-- compared as bytes: a name is unique byte for byte.

-- Ids are 32-bit in the protocol and the API; the CHECK keeps them so.
CREATE TABLE IF NOT EXISTS User (
	id		INTEGER PRIMARY KEY AUTOINCREMENT
			    CHECK (id BETWEEN 1 AND 2147483647),
	name		TEXT NOT NULL UNIQUE COLLATE BINARY,
	pwhash		TEXT NOT NULL,
	created		INTEGER
);

-- Friendship is mutual: both directions are stored.
CREATE TABLE IF NOT EXISTS Friend (
	userid		INTEGER NOT NULL REFERENCES User(id),
	friendid	INTEGER NOT NULL REFERENCES User(id),
	PRIMARY KEY (userid, friendid)
);

CREATE TABLE IF NOT EXISTS AllGroup (
	id		INTEGER PRIMARY KEY AUTOINCREMENT
			    CHECK (id BETWEEN 1 AND 2147483647),
	groupname	TEXT NOT NULL UNIQUE COLLATE BINARY,
	groupdesc	TEXT NOT NULL DEFAULT '',
	creator		INTEGER NOT NULL REFERENCES User(id)
);

-- joined numbers a group's members 1, 2, ... in the order they joined.
-- admin (version 2): named by the creator to manage the group;
-- joinedat (version 2): unix time of joining, 0 for members from before.
CREATE TABLE IF NOT EXISTS GroupUser (
	groupid		INTEGER NOT NULL REFERENCES AllGroup(id),
	userid		INTEGER NOT NULL REFERENCES User(id),
	grouprole	TEXT NOT NULL DEFAULT 'normal'
			    CHECK (grouprole IN ('creator', 'normal')),
	joined		INTEGER NOT NULL,
	admin		INTEGER NOT NULL DEFAULT 0,
	joinedat	INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (groupid, userid)
);
CREATE INDEX IF NOT EXISTS GroupUser_userid ON GroupUser(userid);
CREATE UNIQUE INDEX IF NOT EXISTS GroupUser_joined
    ON GroupUser(groupid, joined);

-- No length limit on message (the seed's VARCHAR(500) lost data).
-- AUTOINCREMENT: ids never reused, so "delete id <= n" is safe.
-- smid: the ClientMsg a copy belongs to (0: none), so a copy kept for a
-- recipient can be removed once it was delivered live.
CREATE TABLE IF NOT EXISTS OfflineMessage (
	id		INTEGER PRIMARY KEY AUTOINCREMENT,
	userid		INTEGER NOT NULL REFERENCES User(id),
	message		TEXT NOT NULL,
	created		INTEGER,
	smid		INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS OfflineMessage_userid
    ON OfflineMessage(userid, id);
CREATE INDEX IF NOT EXISTS OfflineMessage_smid
    ON OfflineMessage(userid, smid);

-- Chats a client asked to have acknowledged: (sender, client message
-- id) -> server message id, so a resend after a reconnect is answered
-- with the same smid instead of being delivered twice.  done: the
-- message was stored for its recipients.
CREATE TABLE IF NOT EXISTS ClientMsg (
	smid		INTEGER PRIMARY KEY AUTOINCREMENT,
	userid		INTEGER NOT NULL REFERENCES User(id),
	cmid		INTEGER NOT NULL,
	done		INTEGER NOT NULL DEFAULT 0,
	created		INTEGER,
	UNIQUE (userid, cmid)
);

-- Blocks (version 2): userid no longer receives blockedid's chats,
-- friend requests or group invitations.
CREATE TABLE IF NOT EXISTS Block (
	userid		INTEGER NOT NULL REFERENCES User(id),
	blockedid	INTEGER NOT NULL REFERENCES User(id),
	PRIMARY KEY (userid, blockedid)
);
CREATE INDEX IF NOT EXISTS Block_blockedid ON Block(blockedid);

-- Resume tokens carry their user's generation; bumping it (logout
-- everywhere, a password change) revokes every token issued before.
-- No row: generation 0.
CREATE TABLE IF NOT EXISTS TokenGen (
	userid		INTEGER PRIMARY KEY REFERENCES User(id),
	gen		INTEGER NOT NULL DEFAULT 0
);

-- History (version 3): every delivered chat, one row per message (a
-- group message once), kept history_days.  smid: its server message
-- id; conv: the conversation, (low id << 32) | high id for two users,
-- -groupid for a group; created: Unix time in ms (a member reads what
-- came at or after its joinedat); pages go by it, smid breaks ties.
-- sender < 0: a one-to-one chat sent while the recipient blocked
-- -sender, readable by its sender only.  No foreign keys: rows outlive a group
-- until pruned, and account deletion removes a sender's own.
CREATE TABLE IF NOT EXISTS History (
	smid		INTEGER PRIMARY KEY,
	conv		INTEGER NOT NULL,
	sender		INTEGER NOT NULL,
	created		INTEGER NOT NULL,
	message		TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS History_conv ON History(conv, created, smid);
-- No index on sender: one cost every chat a third of its insert; account
-- deletion finds a sender's rows through History_conv (store_sqlite.c).
DROP INDEX IF EXISTS History_sender;
CREATE INDEX IF NOT EXISTS History_created ON History(created);

-- HistoryConv (version 4): the one-to-one conversations userid received
-- chats in (conv as in History) and when the latest came (ms).  RESUME
-- reads History_conv for these and the user's groups only, not every
-- user's traffic since "since".  Written once per conversation and
-- history batch (cheaper than an index entry per chat), and by a writer
-- that wrote it less than a minute before only once "last" has moved a
-- minute: RESUME reads the rows a minute before its cursor
-- (SQ_HCONV_SLACK_MS).  Pruned with History.
CREATE TABLE IF NOT EXISTS HistoryConv (
	userid		INTEGER NOT NULL,
	conv		INTEGER NOT NULL,
	last		INTEGER NOT NULL,
	PRIMARY KEY (userid, conv)
) WITHOUT ROWID;

PRAGMA user_version = 4;
