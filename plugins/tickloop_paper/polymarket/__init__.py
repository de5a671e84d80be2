"""A paper Polymarket: the CLOB v2 endpoints ``py-clob-client-v2`` uses, and the Data API's
``GET /positions``, over a small state model (markets, books, accounts, orders, trades).

It speaks the real wire protocol and checks what the real exchange checks, so the official
client runs against it unmodified:

- **L1 auth** (``POST /auth/api-key``, ``GET /auth/derive-api-key``): the ``ClobAuth`` EIP-712
  signature in ``POLY_SIGNATURE`` must recover to ``POLY_ADDRESS`` (domain ``ClobAuthDomain``,
  version 1, chain 137). API keys are derived deterministically per address and nonce.
- **L2 auth** (orders, cancels, open orders, trades, balances): ``POLY_SIGNATURE`` must be the
  HMAC-SHA256 of ``timestamp + METHOD + path + body`` under the key's secret, and the key must
  belong to ``POLY_ADDRESS``; otherwise 401 ``Unauthorized/Invalid api key``.
- **Orders** (``POST /order``): V2 orders only (a V1 order is answered
  ``order_version_mismatch``, as CLOB v2 does). The EIP-712 ``Order`` is recovered against the
  standard or the neg-risk V2 exchange (by the token's ``neg_risk`` flag) with domain version
  "2"; the signer must be the maker (signature type 0, EOA) and the API key's address. Prices
  must sit on the tick inside ``[tick, 1 - tick]``, sizes must reach the book's
  ``min_order_size``; a BUY needs the pUSD, a SELL the shares (balance minus what resting orders
  reserve): else ``not enough balance / allowance``. FOK fills completely or not at all, FAK
  fills what it can (nothing: an error), GTC/GTD fill what crosses and rest the remainder.
  Market BUY orders (FOK/FAK) spend their ``makerAmount`` of pUSD; everything else trades
  shares. Fills are in lots of 0.01 shares at the resting levels' prices and consume the book.
  Every matched order answers with ``transactionsHashes``, so the client never polls trades.
- **Books**: bids ascending and asks descending (best price last), like the real REST book.
  User orders that rest are not shown in the book and are not matched against each other: the
  seeded book is the only liquidity (move it with ``POST /paper/book``).
- **Resolution** (``POST /paper/resolve``): the market closes (its books answer 404 ``No
  orderbook exists for the requested token id``, its resting orders are cancelled), the Data API
  marks its positions ``redeemable``, and ``POST /paper/redeem`` pays $1 a winning share.

Paper control (no auth; the server is loopback): ``POST /paper/fund {"address", "pusd",
"tokens"?, "initial"?}``, ``POST /paper/resolve {"condition_id", "winner"}``, ``POST
/paper/redeem {"address", "token_ids", "amounts"?}``, ``POST /paper/book {"token_id", "mid"? |
"bids"/"asks"}``, ``GET /paper/balance?address=``, ``GET /paper/state``.

Faults (``server.faults``): ``no_match`` (an FOK/FAK order finds no liquidity) and
``partial_fill`` (``params={"fraction": 0.5}``: an order matches at most that fraction), besides
the server's own ``status`` and ``latency``.

Fees are zero. Amounts are integers with 6 decimals (pUSD and shares), as on chain.

Layout: :mod:`.app` (the two apps), :mod:`.routes` (the route tables and the CLOB's endpoint
handlers), :mod:`.auth` (L1, L2 and order signatures), :mod:`.orders` (posting an order step by
step, cancels, expiry), :mod:`.matching` (what an order takes from the book, the trade it books),
:mod:`.accounts` (balances, reservations, cost basis), :mod:`.markets` (seeded markets, books,
views), :mod:`.positions` (the Data API), :mod:`.control` (the ``/paper/*`` endpoints),
:mod:`.wire` (amounts, prices, errors).
"""

from tickloop_paper.polymarket.app import PolymarketPaper
from tickloop_paper.polymarket.markets import SEED_MARKETS, condition_id, token_id
from tickloop_paper.polymarket.wire import ApiError

__all__ = ["SEED_MARKETS", "ApiError", "PolymarketPaper", "condition_id", "token_id"]
