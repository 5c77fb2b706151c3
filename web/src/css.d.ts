// esbuild bundles the CSS a module imports into app-[hash].css; to TypeScript it is a side effect.
declare module "*.css";
