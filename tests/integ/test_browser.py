#!/usr/bin/env python3
"""The web client in a real headless Chromium (issues 16 and 17).

chatd serves www/ on its WebSocket listener; two Chromium windows
(selenium + chromedriver) open the page, register two users, make them
friends and chat both ways, then chat in a group where a TCP user (the
seed protocol over a plain socket) takes part too.  A message holding
HTML is shown as text, never run.  The page's controls for the
extensions: member pages, leaving a group, removing a member (refused
to a plain member), admins, renaming, handing over, dissolving; removing
a friend; blocking; typing notices and read
receipts; paging back through a conversation's history; deleting the
account (a wrong password refused first).  After the server kicks a page it comes back with its resume
token, never its password, and resumes: a burst of chats that straddles
the drop is shown once and in order (issue 13).  Screenshots are kept under the build tree in
tests/integ/screenshots/ as test artefacts.

Without chromium, chromedriver or python3-selenium the test is SKIPPED
(exit 77) with a banner, except in CI (CI=true), where it FAILS.
"""

import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True     # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatlib  # noqa: E402
import cluster  # noqa: E402
from chatlib import ONE_CHAT, GROUP_CHAT, unique  # noqa: E402
from test_tokens import key_file  # noqa: E402

GROUP_NOTICE = 112

SKIP = 77
WAIT = 15.0
XSS = '<img src=x onerror="document.title=\'pwned\';window.__xss=1">'


def _import_selenium():
    try:
        import selenium.webdriver  # noqa: F401
    except ImportError:
        # Debian's python3-selenium, when python3 is not Debian's own
        sys.path.append("/usr/lib/python3/dist-packages")
        import selenium.webdriver  # noqa: F401
    from selenium import webdriver
    return webdriver


def require():
    missing = []
    browser = cluster.find_prog("chromium") or cluster.find_prog(
        "chromium-browser")
    driver = cluster.find_prog("chromedriver")
    if not browser:
        missing.append("chromium (apt-get install chromium)")
    if not driver:
        missing.append("chromedriver (apt-get install chromium-driver)")
    try:
        _import_selenium()
    except ImportError:
        missing.append("selenium (apt-get install python3-selenium)")
    if not missing:
        return browser, driver
    name = os.path.basename(sys.argv[0])
    if cluster.in_ci():
        sys.stderr.write("%s: FAIL: CI=true and missing: %s\n"
                         % (name, "; ".join(missing)))
        sys.exit(1)
    banner = "*" * 72
    sys.stderr.write("\n%s\n*** %s SKIPPED: missing %s\n*** scripts/deps "
                     "installs them; in CI this is a failure.\n%s\n"
                     % (banner, name, "; ".join(missing), banner))
    sys.exit(SKIP)


def shots_dir():
    top = os.environ.get("CHATD_TOP_BUILDDIR") or os.getcwd()
    d = os.path.join(top, "tests", "integ", "screenshots")
    os.makedirs(d, exist_ok=True)
    return d


class Page:
    """One browser window on the chat page."""

    def __init__(self, tag, url, browser, driver, profile):
        webdriver = _import_selenium()
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
                  "--disable-dev-shm-usage", "--window-size=1100,760",
                  "--no-first-run", "--disable-extensions",
                  "--user-data-dir=" + profile):
            opts.add_argument(a)
        self.tag = tag
        self.d = webdriver.Chrome(service=Service(driver), options=opts)
        self.d.set_page_load_timeout(WAIT)
        self.d.get(url)
        self.wait(lambda: self.text("conn") == "connected", "connected")

    def quit(self):
        try:
            self.d.quit()
        except Exception:       # noqa: BLE001 - best effort at teardown
            pass

    # ---- small helpers --------------------------------------------

    def by_id(self, i):
        return self.d.find_element("id", i)

    def text(self, i):
        return self.by_id(i).text

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait(self, pred, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return
            except Exception:   # noqa: BLE001 - the page is still changing
                pass
            time.sleep(0.05)
        self.shot("timeout")
        raise AssertionError("%s: %s not seen within %.0f s (status: %r)"
                             % (self.tag, what, timeout, self.text("status")))

    def fill(self, i, value):
        e = self.by_id(i)
        e.clear()
        e.send_keys(value)

    def click(self, i):
        self.by_id(i).click()

    def shot(self, name):
        p = os.path.join(shots_dir(), "%s-%s.png" % (self.tag, name))
        self.d.save_screenshot(p)
        return p

    # ---- what a user does ------------------------------------------

    def register(self, name, password):
        self.fill("reg-name", name)
        self.fill("reg-pass", password)
        self.click("reg-btn")
        self.wait(lambda: "your id is" in self.text("status"), "registered")
        return int(re.search(r"your id is (\d+)", self.text("status"))
                   .group(1))

    def login(self, who, password):
        self.fill("login-name", str(who))
        self.fill("login-pass", password)
        self.click("login-btn")
        self.wait(lambda: self.by_id("app").is_displayed() and
                  not self.by_id("auth").is_displayed(), "logged in")

    def list_items(self, list_id):
        """[(data-id, text)] of #friends or #groups."""
        return self.js(
            "return Array.from(document.querySelectorAll('#' + arguments[0]"
            " + ' > li')).map(li => [li.dataset.id, li.textContent,"
            " li.dataset.state || '']);", list_id)

    def open(self, list_id, ident):
        self.wait(lambda: any(i == str(ident) for i, _, _ in
                              self.list_items(list_id)),
                  "%s %s in the list" % (list_id, ident))
        self.click_css("#%s > li[data-id='%s']" % (list_id, ident))

    def click_css(self, selector):
        """Click what the selector finds, again if the page redrew it in
        between (the lists are redrawn as messages come)."""
        def once():
            self.d.find_element("css selector", selector).click()
            return True
        self.wait(once, "a click on %s" % selector)

    def send(self, text):
        e = self.by_id("msg-input")
        e.clear()
        self.js("arguments[0].value = arguments[1];", e, text)
        self.click("send-btn")

    def messages(self):
        """[(text, mine, state)] shown in the open conversation."""
        return self.js(
            "return Array.from(document.querySelectorAll('#messages > li'))"
            ".map(li => [li.querySelector('.text').textContent,"
            " li.classList.contains('mine'), li.dataset.state || '']);")

    def wait_message(self, text, mine=False):
        self.wait(lambda: any(t == text and m == mine
                              for t, m, _ in self.messages()),
                  "message %r" % text)

    def reset(self, url):
        """The page loaded afresh, nobody logged in, no token kept."""
        self.js("sessionStorage.clear();")
        self.d.get(url)
        self.wait(lambda: self.text("conn") == "connected", "connected")

    def members(self):
        """{id: role} in the open group's member list."""
        return dict(self.js(
            "return Array.from(document.querySelectorAll('#members-list >"
            " li')).map(li => [li.dataset.id, li.dataset.role]);"))

    def wait_status(self, pred, what):
        self.wait(lambda: pred(self.text("status")), what)

    def group_ids(self):
        return [i for i, _, _ in self.list_items("groups")]

    def shown_anywhere(self, text):
        """Whether a chat with this text is held in any conversation."""
        return self.js(
            "return Array.from(state.convs.values()).some(c => c.msgs.some("
            "m => m.text === arguments[0]));", text)

    def worker(self):
        """The worker slot serving the page (WHOAMI on its socket)."""
        self.js("window.__worker = null; state.ws.addEventListener("
                "'message', ev => { const m = JSON.parse(ev.data);"
                " if (m.msgid === 105) window.__worker = m.worker; });"
                " send({msgid: 104});")
        self.wait(lambda: self.js("return window.__worker;") is not None,
                  "the WHOAMI answer")
        return self.js("return window.__worker;")


class Browser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.browser, cls.driver = require()
        cls.ws_port = chatlib.free_port()
        cls.ctl_dir = tempfile.mkdtemp(prefix="chatd-ctl-", dir="/tmp")
        cls.S = chatlib.Server(workers=2, extra={
            "websocket_listen": "127.0.0.1:%d" % cls.ws_port,
            "www_root": os.path.join(cluster.SRCDIR, "www"),
            "control_socket": os.path.join(cls.ctl_dir, "ctl.sock"),
        })
        cls.S.keys["token_key_file"] = key_file(cls.S.dir, "token.key")
        cls.S.start()
        cls.tmp = tempfile.mkdtemp(prefix="chatd-browser-")
        cls.pages = []
        url = cls.url = "http://127.0.0.1:%d/" % cls.ws_port
        try:
            for tag in ("alice", "bob"):
                cls.pages.append(Page(tag, url, cls.browser, cls.driver,
                                      os.path.join(cls.tmp, tag)))
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in cls.pages:
            p.quit()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.S.__exit__(None, None, None)
        shutil.rmtree(cls.ctl_dir, ignore_errors=True)

    def fresh(self, n=2):
        """Both pages reset; n users registered (not logged in)."""
        for p in self.pages:
            p.reset(self.url)
        return [self.S.register("web") for _ in range(n)]

    def kick(self, uid):
        """The server drops uid's connections (chatctl kick)."""
        ctl = os.environ.get("CHATCTL_BIN") or os.path.join(
            os.path.dirname(chatlib.chatd_bin()), "chatctl")
        r = chatlib.run([ctl, "-s", os.path.join(self.ctl_dir, "ctl.sock"),
                         "kick", str(uid)])
        self.assertEqual(r.returncode, 0, r.stderr)

    def tcp(self, uid, *requests):
        """Requests sent as uid over TCP, then logged out; the login answer
        (its groups) is returned."""
        c = self.S.client()
        c.login(uid, "pw")
        for r in requests:
            c.send_obj(r)
        c.loginout(uid)
        r = c.login(uid, "pw")
        c.loginout(uid)
        c.ping()
        c.close()
        return r

    def test_two_browsers_and_a_tcp_user(self):
        for p in self.pages:
            p.reset(self.url)
        a, b = self.pages
        an, bn = unique("alice"), unique("bob")
        aid = a.register(an, "pw a")
        bid = b.register(bn, "pw b")
        a.shot("1-registered")
        a.login(an, "pw a")             # by name
        b.login(bid, "pw b")            # by id
        self.assertIn(an, a.text("me"))

        # friends, with their state
        a.fill("friend-id", str(bid))
        a.click("add-friend-btn")
        a.wait(lambda: [(i, s) for i, _, s in a.list_items("friends")] ==
               [(str(bid), "online")], "bob online in alice's friends")
        b.click("refresh-btn")
        b.wait(lambda: any(i == str(aid) for i, _, _ in
                           b.list_items("friends")), "alice in bob's list")

        # one to one, both ways, acknowledged
        a.open("friends", bid)
        a.send("hello bob")
        b.open("friends", aid)
        b.wait_message("hello bob")
        a.wait(lambda: a.messages()[-1][2] in ("delivered", "read"),
               "the chat shown as delivered")
        b.send("hello alice \u00e9\U0001F600")
        a.wait_message("hello alice \u00e9\U0001F600")

        # HTML in a message is text
        a.send(XSS)
        b.wait_message(XSS)
        time.sleep(0.3)
        self.assertEqual(b.js("return document.querySelectorAll("
                              "'#messages img').length;"), 0)
        self.assertIsNone(b.js("return window.__xss;"))
        self.assertNotEqual(b.d.title, "pwned")
        b.shot("2-html-as-text")

        # a group with a TCP user in it
        carol = self.S.user("carol")
        gname = unique("grp")
        a.fill("group-name", gname)
        a.fill("group-desc", "<b>not bold</b>")
        a.click("create-group-btn")
        a.wait(lambda: any(gname in t for _, t, _ in a.list_items("groups")),
               "the new group")
        gid = next(i for i, t, _ in a.list_items("groups") if gname in t)
        b.fill("group-id", gid)
        b.click("join-group-btn")
        b.wait(lambda: any(i == gid for i, _, _ in b.list_items("groups")),
               "bob in the group")
        carol.c.addgroup(carol.id, int(gid))
        carol.c.ping()
        a.click("refresh-btn")
        a.wait(lambda: carol.name in next(
            t for i, t, _ in a.list_items("groups") if i == gid),
            "carol among the members")
        a.open("groups", gid)
        a.send("hello group")
        b.open("groups", gid)
        b.wait_message("hello group")
        m = carol.c.recv_msgid(GROUP_CHAT)
        self.assertEqual((m["id"], m["msg"]), (aid, "hello group"))
        carol.groupchat(int(gid), "carol here, over TCP")
        a.wait_message("carol here, over TCP")
        b.wait_message("carol here, over TCP")
        b.send("bob to the group")
        a.wait_message("bob to the group")
        m = carol.c.recv_msgid(GROUP_CHAT)
        self.assertEqual((m["id"], m["msg"]), (bid, "bob to the group"))
        self.assertIn(carol.name, a.text("chat-members"))
        a.shot("3-group")
        b.shot("3-group")

        # the TCP user writes to alice directly, and gets an answer
        carol.chat(aid, "a word from TCP")
        a.open("friends", carol.id)
        a.wait_message("a word from TCP")
        a.send("answer to TCP")
        m = carol.c.recv_msgid(ONE_CHAT)
        self.assertEqual((m["id"], m["name"], m["msg"]),
                         (aid, an, "answer to TCP"))

        # offline messages at login
        b.click("logout-btn")
        b.wait(lambda: b.by_id("auth").is_displayed() and
               not b.by_id("app").is_displayed(), "bob logged out")
        a.open("friends", bid)
        a.send("while you were away")
        a.wait(lambda: a.messages()[-1][2] == "delivered", "stored")
        b.login(bn, "pw b")
        b.open("friends", aid)
        b.wait_message("while you were away")
        self.assertTrue(b.js("return document.querySelector("
                             "'#messages > li.offline') !== null;"))
        b.shot("4-offline")

        # the server drops alice (chatctl kick): the page reconnects, logs
        # in again by itself and goes on
        self.assertTrue(a.js("return typeof sessionStorage.getItem("
                             "'chatd.token') === 'string';"))
        self.assertEqual(a.js("return localStorage.length;"), 0)
        # every LOGIN frame the page sends from here on is recorded
        a.js("window.__logins = []; const send0 = WebSocket.prototype.send;"
             " WebSocket.prototype.send = function (d) {"
             " try { const o = JSON.parse(d);"
             " if (o.msgid === 1) window.__logins.push(o); } catch (e) {}"
             " return send0.call(this, d); };")
        logins = a.js("return state.logins;")
        self.kick(aid)
        a.wait(lambda: a.js("return state.drops;") == 1 and
               a.js("return state.logins;") > logins and
               a.text("conn") == "connected", "reconnected and logged in")
        sent = a.js("return window.__logins;")
        self.assertGreaterEqual(len(sent), 1)
        for o in sent:      # the token, never the password
            self.assertIsInstance(o.get("token"), str, o)
            self.assertNotIn("password", o)
        a.send("alice is back")
        b.wait_message("alice is back")
        a.shot("4-end")

        # a reload in the same tab resumes with the token as well: the
        # password was never stored
        kept = a.js("return Object.keys(sessionStorage).map("
                    "k => sessionStorage.getItem(k));")
        self.assertEqual(len(kept), 1)          # the token, nothing else
        self.assertNotIn("pw a", kept)
        a.d.get(self.url)
        a.wait(lambda: a.by_id("app").is_displayed() and
               an in a.text("me"), "resumed after a reload")
        a.open("friends", bid)
        a.send("after a reload")
        b.wait_message("after a reload")

    def test_block(self):
        a, b = self.pages
        (aid, an), (bid, bn) = self.fresh()
        a.login(an, "pw")
        b.login(bn, "pw")
        # a TCP user on alice's worker: its chat to bob follows hers on
        # the same path, so once it is shown hers was handled
        carol = self.S.user("carol", worker=a.worker())
        b.fill("block-id", str(aid))
        b.click("block-add-btn")
        b.wait_status(lambda t: t.startswith("blocked"), "blocked")
        b.wait(lambda: b.d.find_elements(
            "css selector", "#blocks > li[data-id='%d']" % aid) != [],
            "alice in the block list")

        a.js("open(arguments[0]);", "u%d" % bid)
        a.send("you will not see this")
        a.wait(lambda: a.messages()[-1][2] == "delivered",
               "the blocked chat acknowledged as if delivered")
        carol.chat(bid, "carol after alice")
        b.open("friends", carol.id)
        b.wait_message("carol after alice")
        self.assertFalse(b.shown_anywhere("you will not see this"))
        self.assertNotIn(str(aid), [i for i, _, _ in b.list_items("friends")])
        b.shot("5-blocked")

        b.click_css("#blocks > li[data-id='%d'] .unblock-btn" % aid)
        b.wait_status(lambda t: t.startswith("unblocked"), "unblocked")
        b.wait(lambda: b.d.find_elements(
            "css selector", "#blocks > li[data-id='%d']" % aid) == [],
            "alice out of the block list")
        a.send("now you do")
        b.open("friends", aid)
        b.wait_message("now you do")
        self.assertFalse(b.shown_anywhere("you will not see this"))

    def test_history_and_delete_account(self):
        a, b = self.pages
        (aid, an), (bid, bn) = self.fresh()
        a.login(an, "pw")
        b.login(bn, "pw")
        b.js("open(arguments[0]);", "u%d" % aid)
        for t in ("h one", "h two", "h three"):
            b.send(t)
            a.open("friends", bid)
            a.wait_message(t)
        a.send("h reply")
        b.wait_message("h reply")
        db = os.path.join(self.S.dir, "chat.db")

        def kept():
            import sqlite3
            d = chatlib.sqlite_db(db)
            try:
                return d.execute("SELECT count(*) FROM History WHERE sender"
                                 " IN (?, ?)", (aid, bid)).fetchone()[0]
            finally:
                d.close()
        a.wait(lambda: kept() == 4, "the four chats in the history",
               timeout=4 * WAIT)
        # a new page (as on another device) shows nothing until asked
        a.reset(self.url)
        a.login(an, "pw")
        a.js("open(arguments[0]);", "u%d" % bid)
        self.assertEqual(a.messages(), [])
        a.click("history-btn")
        want = [("h one", False), ("h two", False), ("h three", False),
                ("h reply", True)]
        a.wait(lambda: [(t, m) for t, m, _ in a.messages()] == want,
               "the history page")
        a.wait(lambda: a.by_id("history-btn").get_attribute("disabled")
               is not None, "no earlier messages")
        a.shot("7-history")

        b.click("delete-account-btn")
        b.fill("delete-pass", "not it")
        b.click("delete-confirm-btn")
        b.wait_status(lambda t: t.startswith("delete account: error 1"),
                      "a wrong password refused")
        self.assertTrue(b.by_id("app").is_displayed())
        b.fill("delete-pass", "pw")
        b.click("delete-confirm-btn")
        b.wait_status(lambda t: t == "account deleted", "account deleted")
        b.wait(lambda: b.by_id("auth").is_displayed(), "the login form")
        r = self.S.client().login_raw(bid, "pw")
        self.assertEqual(r["errno"], chatlib.ERR_AUTH)
        a.wait(lambda: kept() == 1, "bob's chats out of the history",
               timeout=4 * WAIT)

    def test_group_controls(self):
        a, b = self.pages
        (aid, an), (bid, bn) = self.fresh()
        gname = unique("g")
        r = self.tcp(aid, {"msgid": 8, "id": aid, "groupname": gname,
                           "groupdesc": "first"})
        gid = next(g["id"] for g in r["groups"] if g["groupname"] == gname)
        self.tcp(bid, {"msgid": 9, "id": bid, "groupid": gid})
        carol = self.S.user("carol")
        carol.c.addgroup(carol.id, gid)
        carol.c.ping()
        # 20 more members: the list comes in pages of 20
        c = self.S.client()
        for _ in range(20):
            uid = c.register(unique("extra"), "pw")
            c.login(uid, "pw")
            c.addgroup(uid, gid)
            c.loginout(uid)
        c.ping()
        c.close()
        a.login(an, "pw")
        b.login(bn, "pw")
        a.open("groups", gid)
        b.open("groups", gid)
        a.wait(lambda: len(a.members()) == 20 and
               a.text("members-info") == "1\u201320 of 23", "a full page")
        self.assertEqual([a.members()[str(i)] for i in (aid, bid, carol.id)],
                         ["creator", "normal", "normal"])
        a.click("members-next")
        a.wait(lambda: len(a.members()) == 3 and
               a.text("members-info") == "21\u201323 of 23", "page two")
        self.assertTrue(a.by_id("members-next").get_attribute("disabled"))
        a.click("members-prev")
        a.wait(lambda: str(carol.id) in a.members(), "page one again")

        # a plain member may not remove anyone
        b.wait(lambda: str(carol.id) in b.members(), "carol listed")
        b.click_css("#members-list > li[data-id='%d'] .remove-btn"
                    % carol.id)
        b.wait_status(lambda t: "error 22" in t, "the refusal")
        self.assertIn("remove", b.text("status"))
        b.shot("6-refused")

        # the creator may: carol is told, bob sees the notice
        a.click_css("#members-list > li[data-id='%d'] .remove-btn"
                    % carol.id)
        a.wait(lambda: str(carol.id) not in a.members(), "carol removed")
        m = carol.c.recv_msgid(GROUP_NOTICE)
        self.assertEqual((m["event"], m["groupid"], m["by"], m["userid"]),
                         ("removed", gid, aid, carol.id))
        b.wait_message("%s removed %s" % (an, carol.name))

        # an admin, a new name and description, pushed to bob
        a.click_css("#members-list > li[data-id='%d'] .admin-btn" % bid)
        a.wait(lambda: a.members().get(str(bid)) == "admin", "bob admin")
        b.wait_message("%s made %s an admin" % (an, bn))
        new = unique("renamed")
        a.fill("rename-input", new)
        a.click("rename-btn")
        b.wait(lambda: new in b.text("chat-title"), "the new name at bob")
        a.fill("describe-input", "<i>second</i>")
        a.click("describe-btn")
        b.wait(lambda: b.text("chat-desc") == "<i>second</i>",
               "the description at bob, as text")
        b.shot("6-managed")

        # alice hands the group to bob and may then no longer dissolve it
        a.click_css("#members-list > li[data-id='%d'] .owner-btn" % bid)
        a.wait(lambda: a.members().get(str(bid)) == "creator" and
               a.members().get(str(aid)) == "normal", "bob the creator")
        b.wait_message("%s handed the group to %s" % (an, bn))
        a.click("dissolve-btn")
        a.wait_status(lambda t: t.startswith("dissolve: error 22"),
                      "the refusal")
        self.assertIn(str(gid), a.group_ids())

        # alice leaves: gone from her list, bob is told
        a.click("leave-btn")
        a.wait(lambda: str(gid) not in a.group_ids(), "group gone at alice")
        b.wait_message("%s left" % an)
        b.wait(lambda: str(aid) not in b.members() and
               len(b.members()) == 20, "alice gone from the list")

        # the creator dissolves it
        b.click("dissolve-btn")
        b.wait(lambda: str(gid) not in b.group_ids(), "group dissolved")
        b.wait_status(lambda t: "dissolved" in t, "dissolved")

    def test_typing_and_read(self):
        a, b = self.pages
        (aid, an), (bid, bn) = self.fresh()
        self.tcp(aid, {"msgid": 7, "id": aid, "friendid": bid})
        a.login(an, "pw")
        b.login(bn, "pw")
        a.open("friends", bid)
        b.open("friends", aid)
        a.by_id("msg-input").send_keys("hel")
        b.wait(lambda: b.text("typing") == "%s is typing\u2026" % an,
               "the typing notice")
        self.assertEqual(b.messages(), [])          # never kept as a chat
        b.shot("7-typing")
        a.send("please read")
        b.wait_message("please read")
        b.wait(lambda: b.text("typing") == "", "the notice gone")
        a.wait(lambda: a.messages()[-1][2] == "read", "shown as read")
        a.wait(lambda: "%s read up to" % bn in a.text("read-mark") and
               "please read" in a.text("read-mark"), "read up to")
        a.shot("7-read")

        # the friendship ended from alice's side: bob is told
        a.click("unfriend-btn")
        a.wait(lambda: a.list_items("friends") == [] or all(
            s == "" for _, _, s in a.list_items("friends")),
            "bob no longer a friend")
        b.wait_status(lambda t: t == "%s removed you as a friend" % an,
                      "the notice")
        b.wait(lambda: all(s == "" for _, _, s in b.list_items("friends")),
               "alice no longer a friend")


    def test_resume_gap_free(self):
        """The page is dropped in the middle of a burst of one-to-one chats;
        after its resume (RESUME, 128) it shows every chat once, in order:
        the ones the old connection had in flight, the ones stored while
        it was away and the ones pushed live before the resume was in."""
        a = self.pages[0]
        a.reset(self.url)
        (aid, an), = [self.S.register("web")]
        a.login(an, "pw")
        s = self.S.user("sender")
        s.chat(aid, "before the drop")
        a.open("friends", s.id)
        a.wait_message("before the drop")
        since = a.js("return state.lastSmid;")
        self.assertGreater(since, 0)
        # small pages, so the page has to follow "more" with "after"
        a.js("state.resumeLimit = 15;")
        # every RESUME the page sends and every page it gets is recorded
        a.js("window.__resumes = []; window.__pages = [];"
             " const send0 = WebSocket.prototype.send;"
             " WebSocket.prototype.send = function (d) {"
             " try { const o = JSON.parse(d);"
             " if (o.msgid === 128) window.__resumes.push(o); } catch (e) {}"
             " return send0.call(this, d); };"
             " const page0 = resumePage; resumePage = function (m) {"
             " window.__pages.push(m); return page0(m); };"
             " window.__held = []; const rel0 = releaseHeld;"
             " releaseHeld = function () {"
             " window.__held.push(state.held.length); return rel0(); };")
        drops, logins = a.js("return [state.drops, state.logins];")
        n = 40
        texts = ["burst %02d" % i for i in range(n)]
        for t in texts[:15]:
            s.chat(aid, t)
        self.kick(aid)
        for t in texts[15:30]:          # stored while the page is away
            s.chat(aid, t)
        s.c.ping()
        a.wait(lambda: a.js("return state.logins;") > logins,
               "logged in again", timeout=60)
        for t in texts[30:]:            # live, before the resume is in
            s.chat(aid, t)
        s.c.ping()

        def burst():
            return [t for t, _, _ in a.messages() if t.startswith("burst ")]
        a.wait(lambda: len(burst()) >= n and
               not a.js("return state.resuming;"),
               "the whole burst after the resume", timeout=60)
        self.assertGreaterEqual(a.js("return state.drops;"), drops + 1)
        self.assertEqual(burst(), texts)
        kept = a.js("return state.convs.get('u' + arguments[0]).msgs.map("
                    "m => [m.text, m.smid]);", s.id)
        self.assertEqual([t for t, _ in kept], ["before the drop"] + texts)
        # "since" names the last chat shown before the drop: one sent
        # before the kick (the old connection may have shown several)
        sent = a.js("return window.__resumes;")
        self.assertEqual(sorted(sent[0]), ["limit", "msgid", "since"])
        self.assertEqual(sent[0]["limit"], 15)
        self.assertIn(sent[0]["since"], [m for _, m in kept[:16]])
        self.assertTrue(any("after" in o for o in sent[1:]), sent)
        pages = a.js("return window.__pages;")
        self.assertGreaterEqual(len(pages), 2)
        self.assertFalse(pages[-1]["more"])
        # which way the chats came varies with the machine's speed
        sys.stderr.write("resume: %d pages of %s chats, %s held\n" % (
            len(pages), [len(p["messages"]) for p in pages],
            a.js("return window.__held;")))
        a.shot("8-resumed")


if __name__ == "__main__":
    require()
    unittest.main(verbosity=2)
