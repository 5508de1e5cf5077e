"""The flows admin, by concern (Django's autodiscovery imports this package,
which registers every ModelAdmin by importing its module):

- flow.py: the Flow page (FlowAdmin) and its tools (edit, delete draft,
  duplicate, export, a version's page);
- transitions.py: the lifecycle buttons (LifecycleTransitionsMixin), each
  running a flows.lifecycle service;
- rendering.py: error lists, node and edge tables;
- canvas.py, editor.py: the canvas's configuration and endpoints, the launch
  review and live status;
- monitoring.py, activity.py, audience.py, dashboard.py: the marketer's pages
  (their queries are flows/selectors/);
- records.py: read-only pages of versions and of what the engine records;
- ab_winner.py: the recorded A/B winners (read-only);
- privacy.py: erase / export on the customer list;
- forms.py, common.py: the Flow forms; what the views share.
"""

from customers.admin import CustomerAdmin
from flows.admin import ab_winner, flow, privacy, records  # noqa: F401 (registers the ModelAdmins)

# Erase / export on the customer list: the services touch runs (flows'
# records) and customers never imports flows, so they are attached from here.
privacy.attach_to(CustomerAdmin)
