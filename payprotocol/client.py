"""``PayClient``: the blocking P3 client with callbacks, the public surface.

Strategy: this module is the public methods and one short request path
(:meth:`PayClient._call`); the machinery lives in small modules underneath,
each doing one job (architecture.md, "client internals"):

* :mod:`._requests`: the request table, its sliding deadlines, the pure
  routing of messages and the settlement rules that turn a response into a
  result, a :class:`ServerError` or an unknown outcome (no I/O);
* :mod:`._dispatch`: the callback dispatcher thread and the subscriber lists;
* :mod:`._inbound`: what each server message does, on the reader thread;
* :mod:`._connection`: a transport with its reader thread, decoding, wire trace;
* :mod:`._link`: the connection's state and end; :mod:`._reconnect`: the loop;
* :mod:`._recorder`: the journal side (a null recorder without a journal)
  and :meth:`recover`; :mod:`._answers`: the abort and the action answers.

The request path: register (only while connected), journal, send, wait on
the request's own latch, settle, record the outcome, always remove.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

import attrs

from . import codec
from . import models as m
from ._amends import Amends
from ._answers import DeviceRef, ReaderAnswers, resource_of
from ._dispatch import Dispatcher, ErrorHook, Subscribers
from ._inbound import ActionCallback, Inbound, LateResultCallback, UpdateCallback
from ._link import JOIN_TIMEOUT, ConnectionState, Link, StateCallback
from ._money import Amount, exact, normalised, optional_exact
from ._reconnect import DEFAULT_RECONNECT, ReconnectPolicy
from ._recorder import RecoveredOutcome, open_recorder, recover
from ._recording import RecordTarget, open_cassette
from ._requests import (
    RequestTable,
    TagSource,
    data_of,
    transaction_in,
    wait_limits,
    with_custom_identifier,
)
from ._settle import settle
from .errors import (
    CallbackDeadlockError,
    ConnectionLostError,
    RequestTimeoutError,
    ServerError,
    TransactionOutcomeUnknownError,
)
from .framing import DEFAULT_MAX_FRAME_SIZE
from .transport import ConnectCancel, check_url, open_transport, safe_url

if TYPE_CHECKING:
    import ssl

    from .journal import Journal, PendingOutcome

__all__ = [
    "CallbackDeadlockError",
    "ConnectionState",
    "PayClient",
    "ReconnectPolicy",
    "RecoveredOutcome",
]

logger = logging.getLogger("payprotocol")

# How long charge() waits for the callbacks queued before its final response.
_CALLBACK_DRAIN_TIMEOUT = 1.0


class PayClient(Amends, ReaderAnswers):
    """A synchronous client of one PayServer connection.

    ``url`` is ``tcp://host:port``, ``tls://host:port``, ``ws://host:port/path`` or
    ``wss://host:port/path``. ``timeout`` bounds plain requests (and connecting);
    transactions use a sliding ``transaction_timeout`` re-armed by every update
    or action, under ``transaction_max_duration``. Use it as a context manager,
    or call :meth:`connect` and :meth:`close`. ``record`` (a path or an open
    file) writes every message to a cassette (``docs/guides/replay.rst``), the
    cardholder name masked unless ``record_cardholder_name``.

    A lost connection is re-established by ``reconnect`` (a
    :class:`ReconnectPolicy`; ``None`` turns it off) until :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        transaction_timeout: float = 120.0,
        transaction_max_duration: float = 900.0,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        reconnect: Optional[ReconnectPolicy] = DEFAULT_RECONNECT,
        journal: Union[Journal, str, os.PathLike[str], None] = None,
        on_callback_error: Optional[ErrorHook] = None,
        wire_trace: bool = False,
        record: Optional[RecordTarget] = None,
        record_cardholder_name: bool = False,
    ) -> None:
        check_url(url, ssl_context)  # a wrong URL or a plain-text ssl_context fails here
        self.url = safe_url(url)  # public: the password masked
        self._url_with_credentials = url  # only for opening the transport
        self.timeout = timeout
        self.transaction_timeout = transaction_timeout
        self.transaction_max_duration = transaction_max_duration
        self._recorder = open_recorder(journal)
        self._tags = TagSource()
        self._table = RequestTable()
        self._dispatcher = Dispatcher(on_callback_error)
        self._update_callbacks: Subscribers[UpdateCallback] = Subscribers()
        self._action_callbacks: Subscribers[ActionCallback] = Subscribers()
        self._late_callbacks: Subscribers[LateResultCallback] = Subscribers()
        self._state_callbacks: Subscribers[StateCallback] = Subscribers()
        inbound = Inbound(
            self._table,
            self._dispatcher,
            self._recorder,
            self._update_callbacks,
            self._action_callbacks,
            self._late_callbacks,
            abort=self.abort_transaction,
        )
        self._connect_cancel = ConnectCancel()  # close() cuts a connect in progress short
        self._link = Link(
            lambda: open_transport(
                self._url_with_credentials,
                connect_timeout=self.timeout,  # read at each attempt: it may be changed
                ssl_context=ssl_context,
                max_frame_size=max_frame_size,
                ping_interval=ping_interval,
                pong_timeout=pong_timeout,
                cancel=self._connect_cancel,
            ),
            table=self._table,
            inbound=inbound,
            dispatcher=self._dispatcher,
            state_callbacks=self._state_callbacks,
            policy=reconnect,
            wire_trace=wire_trace,
            tap=open_cassette(record, url=url, keep_cardholder_name=record_cardholder_name),
        )
        # Kept in memory only, to log in again after a reconnect.
        self._credentials: Optional[Tuple[str, str, Union[m.ProviderMode, str]]] = None
        self._link.login_again = self._login_again

    # --- lifecycle ---------------------------------------------------------

    def __enter__(self) -> PayClient:
        if not self._link.started:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PayClient {safe_url(self.url)} {self.state.value}>"

    @property
    def connected(self) -> bool:
        """True while the connection is up and requests can be sent."""
        return self._link.state is ConnectionState.CONNECTED

    @property
    def state(self) -> ConnectionState:
        """The connection's state; changes are reported to ``on_connection_state``."""
        return self._link.state

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the client is connected (and, after
        a reconnect, logged in again). Returns whether it is."""
        return self._link.wait_connected(timeout)

    def connect(self) -> None:
        """Open the connection and start the reader and dispatcher threads."""
        self._link.connect()

    def close(self) -> None:
        """Close the connection; every waiting call raises at once. Idempotent.

        Stops reconnecting, wakes the reader, joins the threads (never from
        themselves) and closes a journal the client opened itself."""
        self._connect_cancel.cancel()  # a connect or reconnect attempt ends at once
        if not self._link.close():
            return
        # Discards the queued callbacks (state changes, barriers and journal
        # writes still run), joins bounded; no callback starts after this.
        self._dispatcher.stop(JOIN_TIMEOUT)
        self._recorder.close()
        self._link.close_tap()
        logger.info("closed the connection to %s", safe_url(self.url))

    # --- callbacks ---------------------------------------------------------

    def on_update(self, callback: UpdateCallback) -> Callable[[], None]:
        """Call ``callback`` with every update (``EXECUTE_TRANSACTION_UPDATE``,
        ``AMEND_TRANSACTION_UPDATE``, or a :class:`RawMessage` of an unknown type)
        of every request. Returns a function that unsubscribes it."""
        return self._update_callbacks.add(callback)

    def on_action(self, callback: ActionCallback) -> Callable[[], None]:
        """Call ``callback`` with every ``EXECUTE_TRANSACTION_ACTION``; answer it
        with ``submit_signature`` and friends (allowed from the callback)."""
        return self._action_callbacks.add(callback)

    def on_late_result(self, callback: LateResultCallback) -> Callable[[], None]:
        """Call ``callback`` with each response nobody waits for any more (it came
        after a timeout, or twice). Such a response may prove a payment happened."""
        return self._late_callbacks.add(callback)

    def on_connection_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` with each :class:`ConnectionState` change (connecting,
        connected, disconnected, reconnecting, closed)."""
        return self._state_callbacks.add(callback)

    # --- public requests -----------------------------------------------------

    def login(
        self,
        merchant_identifier: str,
        merchant_secret: str,
        provider_mode: Union[m.ProviderMode, str] = m.ProviderMode.TEST,
        *,
        timeout: Optional[float] = None,
    ) -> m.LoginMerchantResponse:
        """Log the merchant in on this connection (``LOGIN_MERCHANT_REQUEST``).

        With a reconnect policy, the credentials are kept in memory (never
        written anywhere) to log in again after a reconnect."""
        response = self._login(merchant_identifier, merchant_secret, provider_mode, timeout)
        if self._link.policy is not None:
            self._credentials = (merchant_identifier, merchant_secret, provider_mode)
        return response

    def _login_again(self) -> None:
        """After a reconnect: log in with the last credentials, if any."""
        if self._credentials is not None:
            self._login(*self._credentials, timeout=None, internal=True)

    def _login(
        self,
        merchant_identifier: str,
        merchant_secret: str,
        provider_mode: Union[m.ProviderMode, str],
        timeout: Optional[float],
        *,
        internal: bool = False,
    ) -> m.LoginMerchantResponse:
        data = m.LoginMerchantRequest(provider_mode, merchant_identifier, merchant_secret)
        response = self._call("LOGIN_MERCHANT_REQUEST", data, timeout=timeout, internal=internal)
        return data_of(response, m.LoginMerchantResponse)

    def execute_transaction(
        self,
        device: DeviceRef,
        parameters: m.TransactionParameters,
        *,
        mode: Optional[Union[m.Mode, str]] = None,
        process_parameters: Optional[m.ProcessParameters] = None,
        session_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Transaction:
        """Run a card transaction (``EXECUTE_TRANSACTION_REQUEST``) and block until
        its ``EXECUTE_TRANSACTION_RESPONSE``. A declined or aborted payment is a
        returned :class:`Transaction`. When no custom identifier is given, one is
        assigned, so the transaction can always be looked up.

        ``timeout`` is the sliding silence limit (default ``transaction_timeout``).
        Raises :class:`TransactionOutcomeUnknownError` when the request was sent
        but its outcome can no longer be awaited: look it up, never charge again.
        :class:`CustomIdentifierInUseError` (nothing sent): the identifier is
        unresolved, or settled in the journal and ``allow_identifier_reuse`` unset.
        """
        if parameters.custom_identifier is None:
            parameters = attrs.evolve(parameters, custom_identifier=uuid.uuid4().hex)
        if parameters.auto_capture is None:  # always written (3.2); absent would read as true
            parameters = attrs.evolve(parameters, auto_capture=True)
        data = m.ExecuteTransactionRequest(
            parameters,
            mode=m.Mode.ONLINE if mode is None else mode,  # always written (3.2)
            session_identifier=session_identifier,
            process_parameters=process_parameters,
        )
        response = self._call(
            "EXECUTE_TRANSACTION_REQUEST",
            normalised(data),  # every amount in its currency's minor units, or a ValueError
            resource=resource_of(device),
            on_update=on_update,
            on_action=on_action,
            timeout=timeout,
            custom_identifier=parameters.custom_identifier,
            allow_identifier_reuse=allow_identifier_reuse,
        )
        return transaction_in(response)

    def charge(
        self,
        device: DeviceRef,
        amount: Amount,
        currency: str,
        *,
        subject: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        auto_capture: bool = True,
        statement_descriptor: Optional[str] = None,
        application_fee: Optional[Amount] = None,
        included_tip_amount: Optional[Amount] = None,
        metadata: Optional[Dict[str, Any]] = None,
        tip_adjustable: Optional[bool] = None,
        mode: Optional[Union[m.Mode, str]] = None,
        process_parameters: Optional[m.ProcessParameters] = None,
        session_identifier: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Transaction:
        """Charge a card (an ``EXECUTE_TRANSACTION_REQUEST`` of type ``CHARGE``).
        ``auto_capture=False`` makes a pre-authorisation, captured later with
        :meth:`capture`. See :meth:`execute_transaction` for the outcome rules."""
        parameters = m.TransactionParameters(
            m.TransactionType.CHARGE,
            exact(amount),
            currency,
            auto_capture,
            subject=subject,
            custom_identifier=custom_identifier,
            statement_descriptor=statement_descriptor,
            application_fee=optional_exact(application_fee, "application_fee"),
            included_tip_amount=optional_exact(included_tip_amount, "included_tip_amount"),
            metadata=metadata,
            tip_adjustable=tip_adjustable,
        )
        return self.execute_transaction(
            device,
            parameters,
            mode=mode,
            process_parameters=process_parameters,
            session_identifier=session_identifier,
            on_update=on_update,
            on_action=on_action,
            timeout=timeout,
            allow_identifier_reuse=allow_identifier_reuse,
        )

    def _device_request(
        self, request_type: str, data: Any, device: DeviceRef, timeout: Optional[float]
    ) -> None:
        """A plain request to one reader (an abort or an action's answer)."""
        self._call(request_type, data, resource=resource_of(device), timeout=timeout)

    def amend_transaction(
        self,
        parameters: m.AmendParameters,
        *,
        mode: Optional[Union[m.Mode, str]] = None,
        on_update: Optional[UpdateCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Transaction:
        """Refund, capture or tip-adjust an earlier transaction without a card
        (``AMEND_TRANSACTION_REQUEST``); returns the new transaction. Same
        timeout and outcome rules as :meth:`execute_transaction`."""
        if parameters.custom_identifier is None:
            parameters = attrs.evolve(parameters, custom_identifier=uuid.uuid4().hex)
        response = self._call(
            "AMEND_TRANSACTION_REQUEST",
            normalised(m.AmendTransactionRequest(parameters, mode=mode)),
            on_update=on_update,
            timeout=timeout,
            custom_identifier=parameters.custom_identifier,
            allow_identifier_reuse=allow_identifier_reuse,
        )
        return transaction_in(response)

    def get_transaction(
        self,
        *,
        transaction_identifier: Optional[str] = None,
        custom_identifier: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> m.Transaction:
        """Look a transaction up by one identifier (``GET_TRANSACTION_REQUEST``).
        Raises :class:`ServerError` ``TRANSACTION_NOT_FOUND`` when there is none."""
        if (transaction_identifier is None) == (custom_identifier is None):
            raise ValueError("give exactly one of transaction_identifier and custom_identifier")
        data = m.GetTransactionRequest(transaction_identifier, custom_identifier)
        response = self._call("GET_TRANSACTION_REQUEST", data, timeout=timeout)
        return transaction_in(response)

    def pending_outcomes(self) -> List[PendingOutcome]:
        """Journaled transactions whose outcome is unknown, oldest first (needs
        ``journal=``). Never charge these again: :meth:`recover` them."""
        return self._recorder.journal().pending()

    def recover(self, *, timeout: Optional[float] = None) -> List[RecoveredOutcome]:
        """Resolve every pending journal entry with ``GET_TRANSACTION_REQUEST`` by
        its custom identifier, record what the server says, and return it.

        Call it after :meth:`login`. Each entry gets its own result
        (``RecoveredOutcome.result``; one failed lookup never stops the
        others): ``TRANSACTION_NOT_FOUND`` is recorded as ``NOT_FOUND``
        (nothing was charged), a non-final status stays pending, a transaction
        that is not the request's (identifier, type, currency, amount) is a
        ``mismatch``. Entries of a live client (this one's in flight, or
        another ``PayClient`` on this machine) are left alone. One write.
        """
        return recover(
            self._recorder.journal(),
            lambda custom_identifier: self.get_transaction(
                custom_identifier=custom_identifier, timeout=timeout
            ),
            in_flight=self._table.__contains__,
            owner=self._recorder.owner,
        )

    def request(
        self,
        type: str,
        data: Any = None,
        *,
        resource: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
        allow_identifier_reuse: bool = False,
    ) -> m.Message:
        """Send any request type (raw API) with the same tag correlation,
        callbacks, timeouts and errors; returns the response message.

        ``data`` is a model instance for a known type, or a ``dict`` sent as it
        is, except that an execute or amend without a custom identifier gets
        one assigned (a copy of the dict), so its outcome can be looked up. A
        typed execute or amend request has its amounts normalised like
        :meth:`charge`'s (a ``ValueError`` before anything is sent).
        """
        data, custom_identifier = with_custom_identifier(type, data)
        # Amounts in minor units, as charge() and amend_transaction() send them.
        if isinstance(data, m.ExecuteTransactionRequest):  # noqa: SIM114 - one TypeVar each
            data = normalised(data)
        elif isinstance(data, m.AmendTransactionRequest):
            data = normalised(data)
        return self._call(
            type,
            data,
            resource=resource,
            on_update=on_update,
            on_action=on_action,
            timeout=timeout,
            custom_identifier=custom_identifier,
            allow_identifier_reuse=allow_identifier_reuse,
        )

    # --- the request path ----------------------------------------------------

    def _call(
        self,
        request_type: str,
        data: Any,
        *,
        resource: Optional[str] = None,
        on_update: Optional[UpdateCallback] = None,
        on_action: Optional[ActionCallback] = None,
        timeout: Optional[float] = None,
        custom_identifier: Optional[str] = None,
        internal: bool = False,
        allow_identifier_reuse: bool = False,
    ) -> m.Message:
        if (
            request_type == "EXECUTE_TRANSACTION_REQUEST"
            and self._dispatcher.on_dispatcher_thread()
        ):
            raise CallbackDeadlockError(
                "a transaction cannot be started from a callback: its updates and actions "
                "would need the callback thread, which is busy running this callback"
            )
        request = self._table.new_request(
            self._tags.next(),
            request_type,
            resource=resource,
            custom_identifier=custom_identifier,
            on_update=on_update,
            on_action=on_action,
            data=data,
        )
        if isinstance(data, dict) or (data is not None and request_type not in codec.MESSAGE_TYPES):
            message: m.Message = m.RawMessage(request_type, request.tag, resource, data)
        else:
            message = m.Message(request_type, request.tag, resource, data)
        payload = codec.encode_message(message)  # bad input fails here, before anything
        # A lookup may wait for a reconnect under way, within its own timeout.
        wait = self.timeout if timeout is None else timeout
        connection = self._link.register(request, internal=internal, wait=wait)
        try:
            # Raises, and nothing is sent, for a reused identifier or a failed write.
            self._recorder.sent(request, data, allow_identifier_reuse)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("-> %s tag=%s resource=%s", request_type, request.tag, resource)
            try:
                connection.send(payload)
            except ConnectionLostError as exc:
                self._recorder.not_sent(request, exc)
                raise
            request.sent = True
            try:
                idle, cap = wait_limits(
                    request,
                    timeout,
                    plain_timeout=self.timeout,
                    transaction_timeout=self.transaction_timeout,
                    transaction_max_duration=self.transaction_max_duration,
                )
                response = settle(request, self._table.await_outcome(request, idle, cap))
            except TransactionOutcomeUnknownError as exc:
                self._recorder.unknown(request, exc)
                raise
            except ServerError as exc:
                self._recorder.refused(request, exc)
                raise
            self._recorder.settled(request, response)
            if request.callbacks_done is not None and not self._dispatcher.on_dispatcher_thread():
                request.callbacks_done.wait(_CALLBACK_DRAIN_TIMEOUT)
            return response
        finally:
            self._table.remove(request)
            if isinstance(request.failure, RequestTimeoutError):
                connection.request_timed_out()
