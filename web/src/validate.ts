// A template argument checked as the server will (templates.Param.problem): the same rules and
// messages, so the form tells what is wrong before it is sent.
import type { ParamSchema } from "./types";

/** Python's re.fullmatch as a JS RegExp; null when JS cannot read the pattern (the server
 * still checks it). */
export function fullMatch(pattern: string): RegExp | null {
  try {
    return new RegExp(`^(?:${pattern})$`, "u");
  } catch {
    return null;
  }
}

export function problem(schema: ParamSchema, raw: string | boolean, required: boolean): string | null {
  if (schema.type === "boolean") return null;
  if (raw === "" || raw === false) return required ? "is required" : null;
  const value = String(raw);
  if (schema.type === "integer") {
    if (!/^-?[0-9]{1,18}$/.test(value)) return "must be an integer";
    const n = Number(value);
    if (schema.minimum !== undefined && n < schema.minimum) return `must be at least ${schema.minimum}`;
    if (schema.maximum !== undefined && n > schema.maximum) return `must be at most ${schema.maximum}`;
    return null;
  }
  if (value.includes("\0")) return "must not contain a NUL byte";
  if (schema.enum) return schema.enum.includes(value) ? null : `must be one of ${schema.enum.join(", ")}`;
  if (schema.maxLength !== undefined && value.length > schema.maxLength) {
    return `must be at most ${schema.maxLength} characters`;
  }
  if (schema.pattern !== undefined) {
    const re = fullMatch(schema.pattern);
    if (re && !re.test(value)) return `must match the pattern ${schema.pattern}`;
  }
  return null;
}
