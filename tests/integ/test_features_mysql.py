#!/usr/bin/env python3
"""The feature tests of test_features.py and test_features_groups.py on
other stores (one server for both): against the MySQL backend (a private
MariaDB), and on a node in cluster mode (that MariaDB plus a private
Redis).  One node must behave as it does with SQLite.

Needs mariadbd and redis-server: without them this test is SKIPPED (exit
77), except in CI (CI=true), where that is a failure."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import test_features  # noqa: E402
import test_features_groups  # noqa: E402

ENV = {}


def setUpModule():
    try:
        ENV["db"] = cluster.MariaDB()
        ENV["db"].start()
        ENV["redis"] = cluster.Redis()
        ENV["redis"].start()
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if "redis" in ENV:
        try:
            ENV.pop("redis").cleanup()
        finally:
            if "db" in ENV:
                ENV.pop("db").stop()
    elif "db" in ENV:
        ENV.pop("db").stop()


class FeaturesMySQL(test_features.Features,
                    test_features_groups.FriendsGroups):
    @classmethod
    def setUpClass(cls):
        cls.srv = cluster.Node(ENV["db"].spec, workers=2)
        cls.srv.start()


class FeaturesClusterNode(test_features.Features,
                          test_features_groups.FriendsGroups):
    @classmethod
    def setUpClass(cls):
        cls.srv = cluster.Node(ENV["db"].spec, ENV["redis"],
                               "solo-%d" % os.getpid(), workers=2)
        cls.srv.start()


if __name__ == "__main__":
    cluster.require(("redis", "mariadb"))
    unittest.main(verbosity=2)
