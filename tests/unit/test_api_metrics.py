"""The API's request metrics (producers.metrics.ApiMetrics.observe_request): counted and timed by
method, route template and status, each label set's children looked up once."""

from __future__ import annotations

from producers.metrics import ApiMetrics


def test_requests_are_counted_and_timed_by_route() -> None:
    metrics = ApiMetrics()
    for status in (200, 200, 404):
        metrics.observe_request("GET", "/api/v1/streams/live", status, 0.002)
    metrics.observe_request("POST", "/api/v1/streams", 201, 0.02)
    body = metrics.render()[0].decode()
    assert 'api_requests_total{method="GET",route="/api/v1/streams/live",status="200"} 2.0' in body
    assert 'api_requests_total{method="GET",route="/api/v1/streams/live",status="404"} 1.0' in body
    assert 'api_requests_total{method="POST",route="/api/v1/streams",status="201"} 1.0' in body
    assert (
        'api_request_duration_seconds_bucket{le="0.0025",method="GET",route="/api/v1/streams/live"} 3.0'
        in body
    )
    assert 'api_request_duration_seconds_count{method="POST",route="/api/v1/streams"} 1.0' in body
