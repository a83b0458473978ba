"""A shop over two participants of different kinds: "pg", a pact-participant
in front of a real PostgreSQL (the customer's account), and "inventory", the
Python inventory service over its own SQLite store (the stock). A purchase
debits the account and reserves stock in one transaction. Shared by
test_mixed and test_crash_matrix."""

import threading

import pact
from harness import Cluster, ClusterTestCase, PostgresServer, StoreFile, wait_until

PG_SCHEMA = """
CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0));
INSERT INTO accounts VALUES (1, 100), (2, 100), (3, 100);
CREATE TABLE ledger (id SERIAL PRIMARY KEY,
                     account INT NOT NULL REFERENCES accounts(id) DEFERRABLE INITIALLY DEFERRED);
"""
DEBIT = "UPDATE accounts SET balance = balance - $1 WHERE id = $2"
INITIAL_BALANCE = 100
INITIAL_STOCK = 10


class ShopTest(ClusterTestCase):
    security = "open"
    databases = 0

    @classmethod
    def setUpClass(cls):
        cls.pg = PostgresServer()

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()

    def setUp(self):
        ShopTest.databases += 1
        self.db = "shop%d" % ShopTest.databases
        self.pg.create_database(self.db, PG_SCHEMA)
        self.cluster = Cluster(self.security)
        self.addCleanup(self.cluster.close)

    # ------------------------------------------------------------ processes

    def start_coordinator(self, env=None):
        return self.cluster.start_coordinator(env=env)

    def start_pg(self, env=None):
        return self.cluster.start_pg_participant("pg", self.pg.conninfo(self.db), env)

    def start_inventory(self, env=None, wait_registered=True, flags=()):
        return self.cluster.start_inventory("inventory", {"widget": INITIAL_STOCK}, env,
                                            wait_registered, flags)

    def start_shop(self):
        self.start_coordinator()
        self.start_pg()
        self.start_inventory()

    def connect(self, **options):
        coordinator = pact.connect(self.cluster.coordinators,
                                   **dict(self.cluster.client_options(), **options))
        self.addCleanup(coordinator.close)
        return coordinator

    # ------------------------------------------------------------ the shop

    def buy(self, txn, price, quantity, account=1):
        self.assertEqual(txn.execute("pg", DEBIT, [price, account]).affected_rows, 1)
        self.assertEqual(txn.execute("inventory", "reserve", ["widget", quantity]).affected_rows,
                         1)

    def balance(self, account=1):
        return self.pg.query_int(self.db, "SELECT balance FROM accounts WHERE id = %d" % account)

    def stock(self):
        """(on_hand, reserved) of the widget, read from the service's store."""
        return StoreFile(self.cluster.store_path("inventory")).item("widget")

    def reservations(self):
        return len(StoreFile(self.cluster.store_path("inventory")).reservations())

    def assert_bought(self, price, quantity):
        self.assertEqual(self.balance(), INITIAL_BALANCE - price)
        self.assertEqual(self.stock(), (INITIAL_STOCK - quantity, 0))
        self.assertEqual(self.reservations(), 0)

    def assert_nothing_bought(self):
        self.assertEqual(self.balance(), INITIAL_BALANCE)
        self.assertEqual(self.stock(), (INITIAL_STOCK, 0))
        self.assertEqual(self.reservations(), 0)

    def assert_as_told(self, told, price, quantity):
        """Both participants ended the way the client was told: COMMITTED
        (told is None) bought, ABORTED (or TIMED_OUT) nothing; an unknown
        outcome either, but the same in both."""
        committed = self.balance() == INITIAL_BALANCE - price
        if told is None or (isinstance(told, pact.Unknown) and committed):
            self.assert_bought(price, quantity)
        else:
            self.assertIsInstance(told, (pact.Aborted, pact.Unknown), repr(told))
            self.assert_nothing_bought()
        return committed

    def settled(self):
        """No branch open at either participant, nothing prepared in
        PostgreSQL, no reservation held."""
        try:
            return (not self.cluster.open_branches("pg")
                    and not self.cluster.open_branches("inventory")
                    and self.pg.prepared(self.db) == 0 and self.reservations() == 0)
        except pact.PactError:
            return False

    def wait_settled(self, timeout_s=30):
        wait_until(self.settled, timeout_s, "nothing is open or prepared anywhere")

    def commit_in_background(self, txn):
        """Starts txn.commit() in a thread; join() returns what it raised
        (None when it committed)."""
        told = {}

        def commit():
            try:
                txn.commit()
                told["error"] = None
            except pact.PactError as e:
                told["error"] = e
        thread = threading.Thread(target=commit)
        thread.start()

        def join(timeout_s=30):
            thread.join(timeout_s)
            if thread.is_alive():
                raise AssertionError("commit did not return in %d s" % timeout_s)
            return told["error"]
        return join
