// What a bank's web app writes against the types openapi-typescript generates from /openapi.json: it must compile
// with `tsc --strict`, and stop compiling when the document loses what it relies on.
import type { components, operations, paths } from "./api";

type CreateCompany = operations["createCompany"];
type Company = components["schemas"]["Company"];
type Problem = components["schemas"]["Problem"];

export const request: CreateCompany["requestBody"]["content"]["application/json"] = {
  name: "Acme Ltd",
  journey: "onboarding",
};

export function created(answer: CreateCompany["responses"][201]["content"]["application/json"]): string {
  const company: Company = answer;
  return `${company.companyId}: ${company.journeys.map((j) => `${j.journey} ${j.status}`).join(", ")}`;
}

export function refused(answer: CreateCompany["responses"][409]["content"]["application/problem+json"]): string {
  const problem: Problem = answer;
  const code: "idempotency_key_reused" | "idempotency_request_in_progress" | "conflict" = answer.code;
  return `${problem.status} ${code}`;
}

type Journeys = paths["/journeys"]["get"]["responses"][200]["content"]["application/json"];
export const names = (journeys: Journeys): string[] => journeys.items.map((j) => j.name);

type Connect = operations["createConnection"];
export const connect: Connect["requestBody"]["content"]["application/json"] = { platformKey: "qhnd" };
export const linkOf = (c: Connect["responses"][201]["content"]["application/json"]): string | undefined =>
  c.linkUrl ?? undefined;
