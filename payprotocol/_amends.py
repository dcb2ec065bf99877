"""``PayClient``'s amends by kind: refund, capture and tip adjust (P3 section
3.5, ``AMEND_TRANSACTION_REQUEST``).

Strategy: each method builds the :class:`~payprotocol.models.AmendParameters`
of its kind and hands them to :meth:`Amends.amend_transaction`, which
:class:`~payprotocol.PayClient` implements with its request path (journaled,
judged and timed like a charge). Amounts are made exact here; the request path
normalises them to the currency's minor units.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from . import models as m
from ._inbound import UpdateCallback
from ._money import Amount, exact, optional_exact

__all__ = ["Amends"]


class Amends:
    """Refund, capture and tip adjust, as methods of ``PayClient``."""

    def amend_transaction(
        self,
        parameters: m.AmendParameters,
        *,
        mode: Optional[Union[m.Mode, str]] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Transaction:
        raise NotImplementedError  # PayClient sends it

    def refund(
        self,
        transaction_identifier: str,
        *,
        amount: Optional[Amount] = None,
        currency: Optional[str] = None,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Transaction:
        """Refund a charge, fully or (with ``amount`` and ``currency``) partly
        (``AMEND_TRANSACTION_REQUEST`` of type ``REFUND``)."""
        return self._amend(
            m.TransactionType.REFUND,
            transaction_identifier,
            amount,
            currency,
            subject=subject,
            custom_identifier=custom_identifier,
            metadata=metadata,
            on_update=on_update,
            timeout=timeout,
            allow_identifier_reuse=allow_identifier_reuse,
        )

    def capture(
        self,
        transaction_identifier: str,
        *,
        amount: Optional[Amount] = None,
        currency: Optional[str] = None,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Transaction:
        """Capture a pre-authorisation, fully or partly
        (``AMEND_TRANSACTION_REQUEST`` of type ``CAPTURE``)."""
        return self._amend(
            m.TransactionType.CAPTURE,
            transaction_identifier,
            amount,
            currency,
            subject=subject,
            custom_identifier=custom_identifier,
            metadata=metadata,
            on_update=on_update,
            timeout=timeout,
            allow_identifier_reuse=allow_identifier_reuse,
        )

    def _amend(
        self,
        kind: m.TransactionType,
        transaction_identifier: str,
        amount: Optional[Amount],
        currency: Optional[str],
        *,
        subject: Optional[str],
        custom_identifier: Optional[str],
        metadata: Optional[Dict[str, Any]],
        on_update: Optional[UpdateCallback],
        timeout: Optional[float],
        allow_identifier_reuse: bool,
    ) -> m.Transaction:
        """A refund or capture: an amend of an earlier transaction by amount."""
        parameters = m.AmendParameters(
            kind,
            transaction_identifier,
            amount=optional_exact(amount),
            currency=currency,
            subject=subject,
            custom_identifier=custom_identifier,
            metadata=metadata,
        )
        return self.amend_transaction(
            parameters,
            on_update=on_update,
            timeout=timeout,
            allow_identifier_reuse=allow_identifier_reuse,
        )

    def tip_adjust(
        self,
        transaction_identifier: str,
        tip_amount: Amount,
        currency: str,
        *,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Transaction:
        """Add a tip to a charge (``AMEND_TRANSACTION_REQUEST`` of type
        ``TIP_ADJUST`` with ``includedTipAmount``)."""
        parameters = m.AmendParameters(
            m.TransactionType.TIP_ADJUST,
            transaction_identifier,
            currency=currency,
            subject=subject,
            custom_identifier=custom_identifier,
            included_tip_amount=exact(tip_amount, "tip_amount"),
        )
        return self.amend_transaction(
            parameters,
            on_update=on_update,
            timeout=timeout,
            allow_identifier_reuse=allow_identifier_reuse,
        )
