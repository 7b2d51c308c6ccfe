"""Runware Delivery: where Runware also sends a result, and how long its URL lives."""

from __future__ import annotations

from typing import Any

from .inputs import DELIVERY_TYPE, Inputs, TableNode, int_input, string_input
from .runware.options import DeliveryOptions, delivery_options

INPUTS = Inputs(
    string_input("webhook_url", "webhookURL: Runware POSTs each finished result here "
                 "(empty = none).", api="webhookURL"),
    string_input("upload_endpoint",
                 "uploadEndpoint: Runware PUTs the file here, e.g. a presigned URL "
                 "(empty = none). It is saved in the workflow: mind who you share it with.",
                 api="uploadEndpoint"),
    int_input("ttl", 0, 0, 2_592_000, "ttl: seconds the result URL stays valid; "
              "0 = Runware's default, else at least 60.", api="ttl"),
)


class RunwareDelivery(TableNode):
    """Where Runware also sends the result, and for how long its URL lives."""

    DESCRIPTION = (
        "Delivery options for Runware jobs: a webhook Runware POSTs each finished result "
        "to, an upload endpoint (e.g. a presigned S3 URL) Runware PUTs the file to, and "
        "how long the result URL stays valid. The nodes still download every result."
    )
    FUNCTION = "build"
    RETURN_TYPES = (DELIVERY_TYPE,)
    RETURN_NAMES = ("delivery",)
    OUTPUT_TOOLTIPS = ("Connect to the delivery input of a Runware model node.",)
    INPUTS = INPUTS

    def build(self, *args: Any, **inputs: Any) -> tuple[DeliveryOptions]:
        return (delivery_options(**INPUTS.values(inputs, args)),)
