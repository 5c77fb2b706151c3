// swagger-ui-dist ships no types: what src/docs/main.ts uses of it.
declare module "swagger-ui-dist/swagger-ui-es-bundle.js" {
  interface SwaggerUIOptions {
    url: string;
    dom_id: string;
    deepLinking?: boolean;
    validatorUrl?: string | null;
    displayRequestDuration?: boolean;
    onComplete?: () => void;
  }
  interface SwaggerUISystem {
    preauthorizeApiKey(scheme: string, value: string): void;
  }
  export default function SwaggerUI(options: SwaggerUIOptions): SwaggerUISystem;
}
