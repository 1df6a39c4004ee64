// Lint rules: typescript-eslint's recommended type-aware set, plus the habits STYLE.md asks for.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", ".esan/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["eslint.config.js"] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true, allowNullish: true }],
      "no-restricted-syntax": ["error", { selector: "TSEnumDeclaration", message: "Use a union of string literals; Node strips types and cannot run enums." }],
    },
  },
  {
    files: ["src/storage/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["@grpc/*", "@kubernetes/*", "**/csi/**", "**/san/**", "**/nbd/**", "**/cli/**"], message: "src/storage imports node built-ins only (ARCHITECTURE.md)." }] }],
    },
  },
);
