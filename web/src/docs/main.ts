// /docs: Swagger UI rendering /openapi.json, bundled like the main page (no CDN). "Try it out"
// sends the tab's signed-in token as `Authorization: Bearer` (never in the URL: the
// `access_token` scheme is left for the user to fill in).
import "swagger-ui-dist/swagger-ui.css";
import "./docs.css";
import SwaggerUI from "swagger-ui-dist/swagger-ui-es-bundle.js";
import { adoptTokenFromUrl, token } from "../auth";

adoptTokenFromUrl();
const ui = SwaggerUI({
  url: "/openapi.json",
  dom_id: "#swagger",
  deepLinking: true,
  // Its default sends the spec to validator.swagger.io for a badge: nothing leaves this server.
  validatorUrl: null,
  displayRequestDuration: true,
  onComplete: () => {
    const t = token();
    if (t) ui.preauthorizeApiKey("bearer", t);
  },
});
