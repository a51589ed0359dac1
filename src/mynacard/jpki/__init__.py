"""The public personal authentication service (公的個人認証サービス, JPKI): the signing (署名用) and
user-authentication (利用者証明用) certificate authorities, their keys, issuance from the chip's keys,
revocation on life events, CRLs, the OCSP responder, the verifier registry and the relying-party SDK.

Other parts use :mod:`mynacard.jpki.service` (CAs, issuance, revocation), :mod:`mynacard.jpki.verifiers`
(verifiers, subscriptions, challenges) and :mod:`mynacard.jpki.relying_party` (checking signatures and
logins made with a card).
"""
