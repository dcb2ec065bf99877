"""``PayClient``'s requests to one card reader: the abort and the answers to
the reader's actions (P3 sections 3.2 and 3.3).

Strategy: each method builds its request's data object and hands it to
:meth:`ReaderAnswers._device_request`, which :class:`~payprotocol.PayClient`
implements with its request path. They are plain requests (never journaled,
``timeout`` bounds them) and may be called from a callback: they need the
reader thread only, not the dispatcher.
"""

from __future__ import annotations

import base64
from typing import Any, Optional, Union

from . import models as m

__all__ = ["DeviceRef", "ReaderAnswers", "resource_of"]

#: A reader: a :class:`~payprotocol.Device` or its resource string.
DeviceRef = Union[m.Device, str]


def resource_of(device: DeviceRef) -> str:
    """The resource string of a device argument."""
    return device.resource if isinstance(device, m.Device) else device


class ReaderAnswers:
    """The abort and the four action answers, as methods of ``PayClient``."""

    def _device_request(
        self, request_type: str, data: Any, device: DeviceRef, timeout: Optional[float]
    ) -> None:
        raise NotImplementedError  # PayClient sends it

    def abort_transaction(self, device: DeviceRef, *, timeout: Optional[float] = None) -> None:
        """Ask the server to abort the device's transaction (``ABORT_TRANSACTION_REQUEST``).

        Returns once the abort is accepted; the transaction's own call still
        returns only with its final response. Raises :class:`ServerError`
        (``TRANSACTION_NOT_ABORTABLE``, ``TRANSACTION_NOT_FOUND``) when refused.
        """
        self._device_request(
            "ABORT_TRANSACTION_REQUEST", m.AbortTransactionRequest(), device, timeout
        )

    def submit_signature(
        self,
        device: DeviceRef,
        signature: Union[str, bytes, None] = None,
        *,
        on_receipt: bool = False,
        timeout: Optional[float] = None,
    ) -> None:
        """Answer a ``SIGNATURE`` action (``SUBMIT_SIGNATURE_REQUEST``): a PNG image
        (bytes, or already base64 text), or ``on_receipt=True`` to sign on paper."""
        if (signature is None) == (not on_receipt):
            raise ValueError("give either a signature image or on_receipt=True")
        if isinstance(signature, bytes):
            signature = base64.b64encode(signature).decode("ascii")
        data = m.SubmitSignatureRequest(
            signature=signature, sign_on_receipt=True if on_receipt else None
        )
        self._device_request("SUBMIT_SIGNATURE_REQUEST", data, device, timeout)

    def submit_application_selection(
        self, device: DeviceRef, application_identifier: str, *, timeout: Optional[float] = None
    ) -> None:
        """Answer an ``APPLICATION_SELECTION`` action
        (``SUBMIT_APPLICATION_SELECTION_REQUEST``) with the chosen application's AID."""
        data = m.SubmitApplicationSelectionRequest(application_identifier)
        self._device_request("SUBMIT_APPLICATION_SELECTION_REQUEST", data, device, timeout)

    def submit_credit_debit_selection(
        self,
        device: DeviceRef,
        selection: Union[m.CreditDebit, str],
        *,
        timeout: Optional[float] = None,
    ) -> None:
        """Answer a ``CREDIT_DEBIT_SELECTION`` action
        (``SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST``) with ``CREDIT`` or ``DEBIT``."""
        data = m.SubmitCreditDebitSelectionRequest(selection)
        self._device_request("SUBMIT_CREDIT_DEBIT_SELECTION_REQUEST", data, device, timeout)

    def submit_dcc_selection(
        self, device: DeviceRef, use_converted_amount: bool, *, timeout: Optional[float] = None
    ) -> None:
        """Answer a ``DCC_SELECTION`` action (``SUBMIT_DCC_SELECTION_REQUEST``)."""
        data = m.SubmitDccSelectionRequest(use_converted_amount)
        self._device_request("SUBMIT_DCC_SELECTION_REQUEST", data, device, timeout)
