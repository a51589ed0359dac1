"""The JPKI part's façade: the use cases of the two certificate authorities, as other parts and the HTTP
layer call them. Each concept has its module — ``authorities`` (generations, keys, rollover, the OCSP
responder key), ``certificates`` (views and who may see them), ``issuance`` (at manufacture), ``reissue`` (at
the window), ``revocation``, ``ocsp_store`` (pre-signed responses) and ``crl_store`` — and this module names
what they offer outside the part.

Everything that changes a certificate happens in one transaction: the certificate row, its event, its
pre-encoded CRL entry, the platform operators' notifications and (when the service has the keys at hand)
the pre-signed OCSP response. Revocations lock their CA row, so the CA's revocation counter and CRL numbers
advance in commit order — which is what lets delta CRLs and the OCSP responders' caches be exact across
processes and hosts.
"""

from __future__ import annotations

from mynacard.jpki.authorities import (
    AuthoritiesMissing,
    Authority,
    OcspSigner,
    authorities,
    authorities_exist,
    authority_for_key_hash,
    ca_bundle_pem,
    current_authority,
    ensure_authorities,
    ocsp_signer,
    rollover,
)
from mynacard.jpki.certificates import (
    CertificateRecord,
    CertificateView,
    certificate_by_serial,
    certificate_events,
    certificates_of_card,
    certificates_of_card_serial,
    holder_of_certificate,
    lineage,
    statistics,
)
from mynacard.jpki.crl_store import CrlInfo, crl_numbers, current_crl, publish_crls
from mynacard.jpki.issuance import IssueRequest, JpkiIssuer, issue_batch, issue_card_certificates
from mynacard.jpki.ocsp_store import (
    PresignedResponse,
    certificate_status_row,
    presigned_response,
    refresh_ocsp_responses,
    sign_ocsp_response,
    single_status,
)
from mynacard.jpki.reissue import WindowIssuer, record_handover, reissue_certificate, reissue_sign_certificate
from mynacard.jpki.revocation import (
    abolish_card_certificates,
    hold_card_certificates,
    revocations_since,
    revoke_at_holder_request,
    revoke_certificate,
    revoke_for_life_event,
)

__all__ = [
    "AuthoritiesMissing",
    "Authority",
    "CertificateRecord",
    "CertificateView",
    "CrlInfo",
    "IssueRequest",
    "JpkiIssuer",
    "OcspSigner",
    "PresignedResponse",
    "WindowIssuer",
    "abolish_card_certificates",
    "authorities",
    "authorities_exist",
    "authority_for_key_hash",
    "ca_bundle_pem",
    "certificate_by_serial",
    "certificate_events",
    "certificate_status_row",
    "certificates_of_card",
    "certificates_of_card_serial",
    "crl_numbers",
    "current_authority",
    "current_crl",
    "ensure_authorities",
    "hold_card_certificates",
    "holder_of_certificate",
    "issue_batch",
    "issue_card_certificates",
    "lineage",
    "ocsp_signer",
    "presigned_response",
    "publish_crls",
    "record_handover",
    "refresh_ocsp_responses",
    "reissue_certificate",
    "reissue_sign_certificate",
    "revocations_since",
    "revoke_at_holder_request",
    "revoke_certificate",
    "revoke_for_life_event",
    "rollover",
    "sign_ocsp_response",
    "single_status",
    "statistics",
]
