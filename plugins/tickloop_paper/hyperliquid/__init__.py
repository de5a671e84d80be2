"""A paper Hyperliquid exchange the official ``hyperliquid-python-sdk`` works against unmodified.

It speaks ``POST /info`` and ``POST /exchange`` as Hyperliquid does (the shapes the SDK and
its callers read), over a :class:`tickloop_paper.state.ExchangeState` document, so several processes of
one home share one paper exchange:

- **Signatures.** Every L1 action's signer is recovered with the SDK's own helper
  (``recover_agent_or_user_from_l1_action``, testnet: the SDK signs as testnet for every URL but
  mainnet's), over the action, nonce, ``vaultAddress`` and ``expiresAfter`` exactly as sent, so
  a changed byte means another signer. The signer must be a funded account, or an agent (API)
  wallet approved by one (``approveAgent``, a user-signed action); ``vaultAddress`` acts for a
  sub-account whose master is that account. Anyone else gets Hyperliquid's
  ``User or API Wallet 0x... does not exist.``
- **Nonces**, per signer: a nonce already used, one not above the smallest of the 100 highest
  kept, or one more than a day away from the server clock is refused.
- **Accounts** exist once funded (``POST /paper/fund``). One netted position per coin, cross
  margin (margin = notional / leverage; 20x, or the coin's maximum when lower, until
  ``updateLeverage``), taker and maker fees charged in USDC, realised PnL into the balance.
- **Orders**: limit ``Gtc``/``Alo``/``Ioc`` and trigger (stop / take-profit) orders. The book
  is deep and sits at a movable mid (``POST /paper/mid``; ``spread`` in the state widens it):
  an order that crosses fills in full at the touch (taker), a ``Gtc`` that does not rests and
  fills at its limit price (maker) when the mid moves through it, an ``Ioc`` that does not
  cross is refused. Hyperliquid's rules are enforced with its messages: sizes in the coin's
  ``szDecimals``, prices of at most 5 significant figures and ``6 - szDecimals`` decimals
  (integers always), the $10 minimum (reduce-only orders are exempt, so dust can be closed),
  reduce-only orders that would increase or flip the position, post-only orders that would
  cross, margin.
- **Faults** (armed on the server, :class:`tickloop_paper.server.Fault`): ``partial_fill``
  (``params={"fraction": 0.5}``: the next IOC fills only that part, the rest is cancelled) and
  ``ioc_no_match`` (the next IOC is refused as if the book were empty); the server itself
  applies ``status`` and ``latency``.

Control endpoints (not Hyperliquid's): ``POST /paper/fund {"user", "usdc", "ifNew"?,
"master"?}`` credits perp USDC and creates the account (``ifNew``: only when it does not exist
yet; ``master``: the account is a sub-account of that user), ``POST /paper/mid {"coin", "px"}``
moves a mid (and fills or triggers the resting orders it crosses), ``GET /paper/state`` returns
the whole document.

Layout: :mod:`.app` (the app: ``/info`` and ``/exchange`` flow, paper control), :mod:`.routes`
(the tables from HTTP route, info type and action type to handler), :mod:`.auth` (signers,
agents, vaults, nonces), :mod:`.matching` (placing orders, fills, what a moved mid crosses),
:mod:`.orders` (order records and cancels), :mod:`.account` (balances, positions, margin),
:mod:`.market` (universe, mids, book, tick rules), :mod:`.wire` (numbers and answers).
"""

from tickloop_paper.hyperliquid.app import HyperliquidPaper
from tickloop_paper.hyperliquid.market import UNIVERSE, price_ok, round_price, size_ok
from tickloop_paper.hyperliquid.wire import fmt

__all__ = ["UNIVERSE", "HyperliquidPaper", "fmt", "price_ok", "round_price", "size_ok"]
