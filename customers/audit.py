"""The audit actions customers writes (maestra/audit): a subscription that
staff changed by hand. Registered in CustomersConfig.ready; written by
customers.services.subscriptions.set_subscriptions. A leaf module (no
models), so apps.py can import it."""

from __future__ import annotations

SUBSCRIPTION_CHANGED_ACTION = "subscription.changed"

CUSTOMER_ACTIONS = (SUBSCRIPTION_CHANGED_ACTION,)
