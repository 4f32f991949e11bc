// Swagger UI over this server's own OpenAPI description; its files come from the
// operator's local copy of swagger-ui-dist (MADOGUCHI_DOCS_ASSETS), never a CDN.
"use strict";
window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
