"""上线测试 in the background: the run's checks, then the per-minute wait for its test orders."""
from jobs.context import app_context
from kamen.extensions import db
from kamen.services import catalog, launch_test


def run_launch_test(run_id):
    with app_context() as app:
        client = app.test_client()

        def render(product_id):
            # The real product page, as a customer's browser gets it; not counted as a view.
            response = client.get(f"/p/{product_id}", environ_overrides={catalog.UNCOUNTED_VIEW: True})
            return response.status_code, response.get_data(as_text=True)

        return launch_test.run(db.session, run_id, render).status


def poll_test_orders():
    with app_context():
        return launch_test.poll(db.session)
