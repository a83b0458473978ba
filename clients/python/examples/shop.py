#!/usr/bin/env python3
"""A shop: each purchase debits the customer's account in PostgreSQL
(participant "bank", a pact-participant in front of the database) and
reserves the goods in the inventory service (participant "inventory", the
Python service in inventory_service.py), atomically. scripts/demo-python
runs it; the README walks through it.

    shop.py [COORDINATOR]    (default 127.0.0.1:7710)
"""

import sys

import pact

PRICES = {"widget": 15, "gadget": 10}


def buy(coordinator, customer, sku, quantity):
    """Commits the purchase, or raises and leaves nothing behind."""
    with coordinator.transaction(timeout_ms=10000) as txn:
        txn.execute("bank", "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
                    [PRICES[sku] * quantity, customer])
        txn.execute("inventory", "reserve", [sku, quantity])
    return txn.id


def show(coordinator, customer):
    with coordinator.transaction() as txn:  # reads only: both vote READ_ONLY
        balance = txn.execute("bank", "SELECT balance FROM accounts WHERE id = $1",
                              [customer]).rows[0][0]
        stock = {sku: txn.execute("inventory", "available", [sku]).rows[0][3]
                 for sku in PRICES}
    print("  customer %d has %d; in stock: %s" % (
        customer, balance, ", ".join("%d %ss" % (n, sku) for sku, n in stock.items())))


def main():
    coordinator = pact.connect(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7710")
    show(coordinator, 1)
    for sku, quantity in (("widget", 2), ("gadget", 5), ("widget", 5), ("gadget", 3)):
        print("customer 1 buys %d %ss:" % (quantity, sku))
        try:
            txn_id = buy(coordinator, 1, sku, quantity)
            print("  committed (%s)" % txn_id)
        except pact.Unknown as e:
            print("  outcome unknown: ask coordinator.state(%r) later" % e.txn_id)
        except pact.PactError as e:  # Aborted, or the statement was refused
            print("  rolled back: %s" % e)
        show(coordinator, 1)
    coordinator.close()


if __name__ == "__main__":
    main()
