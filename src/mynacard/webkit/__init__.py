"""The web kit: what a part's pages and JSON routes use — the request's context, caller and clock (`deps`), the
Japanese-first translations (`i18n`), the typed bounded inputs (`params`), the error answers and the safety net
(`errors`), the CSRF token (`csrf`). It never imports the app (`mynacard.web`) or another part's services, so a
part's `api.py` imports it without pulling in every other part."""
