"""Resolves a CloudFormation template for given parameter values and physical IDs (intrinsics
Ref, Sub, GetAtt, If, Join, Split, Select; conditions; rules), and evaluates AWS calls against a
resolved IAM policy the way IAM does for identity policies (Allow statements, wildcards,
StringLike/StringEquals conditions, an absent condition key failing the condition).

Run by tests/all/infra.rs and tests/all/permissions.rs. moto's own IAM enforcement is not faithful
(it checks SSM and CloudFront against `*`, ignores StringLike, checks batch deletes against the
bucket), hence this.

stdin:  {"template": path, "resource": logical ID, "parameters": {...},
         "pseudo": {"AWS::Region": ...}, "refs": {logical ID: physical ID},
         "attributes": {"Logical.Attr": value},
         "calls" (optional, the resource being a policy):
            [{"action": "s3:GetObject", "resource": "arn:...", "context": {"s3:prefix": "..."}}]}
stdout: {"broken_rules": [AssertDescription, ...], "properties": resolved Properties or null when
         the resource's condition is false, "denied": [call, ...], "unused": ["Sid: action", ...]}
"""

import json
import re
import sys

import yaml

NO_VALUE = object()


class Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


Loader.add_multi_constructor("!", _tag)


class Resolver:
    def __init__(self, template, given):
        self.template = template
        self.parameters = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
        self.parameters.update(given["parameters"])
        missing = [name for name, value in self.parameters.items() if value is None]
        if missing:
            raise SystemExit(f"no value for the parameters {missing}")
        self.pseudo = given["pseudo"]
        self.refs = given["refs"]
        self.attributes = given["attributes"]
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.template["Conditions"][name])
        return self.conditions[name]

    def truth(self, node):
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            left, right = (self.resolve(a) for a in args)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not self.truth(args[0])
        if fn == "Fn::And":
            return all(self.truth(a) for a in args)
        if fn == "Fn::Or":
            return any(self.truth(a) for a in args)
        if fn == "Condition":
            return self.condition(args)
        raise SystemExit(f"unknown condition function {fn}")

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise SystemExit(f"no physical ID given for Ref {name}")

    def attribute(self, name):
        if name not in self.attributes:
            raise SystemExit(f"no value given for GetAtt {name}")
        return self.attributes[name]

    def sub(self, text, variables):
        def one(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.attribute(name))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node):
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, args), = node.items()
            if fn == "Ref":
                return self.ref(args)
            if fn == "Fn::GetAtt":
                return self.attribute(".".join(args))
            if fn == "Fn::Sub":
                if isinstance(args, str):
                    return self.sub(args, {})
                return self.sub(args[0], {k: self.resolve(v) for k, v in args[1].items()})
            if fn == "Fn::If":
                return self.resolve(args[1] if self.condition(args[0]) else args[2])
            if fn == "Fn::Join":
                return args[0].join(str(p) for p in self.resolve(args[1]))
            if fn == "Fn::Split":
                return self.resolve(args[1]).split(args[0])
            if fn == "Fn::Select":
                return self.resolve(args[1])[int(self.resolve(args[0]))]
            if fn.startswith("Fn::"):
                raise SystemExit(f"unsupported intrinsic {fn}")
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}


def pattern(glob, ignore_case):
    """IAM's wildcards: `*` any run of characters, `?` one character, nothing else special."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def as_list(value):
    return value if isinstance(value, list) else [value]


def conditions_hold(conditions, context):
    for operator, tests in conditions.items():
        for key, wanted in tests.items():
            if key not in context:
                return False
            value = context[key]
            if operator == "StringLike":
                if not any(pattern(w, False).match(value) for w in as_list(wanted)):
                    return False
            elif operator == "StringEquals":
                if value not in as_list(wanted):
                    return False
            else:
                raise SystemExit(f"unsupported condition operator {operator}")
    return True


def matching_action(statement, call):
    """The statement's action pattern that grants the call, if the statement grants it."""
    if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
        raise SystemExit(f"only Allow statements with Action and Resource are evaluated: {statement}")
    action = next((a for a in as_list(statement["Action"]) if pattern(a, True).match(call["action"])), None)
    if action is None:
        return None
    if not any(pattern(r, False).match(call["resource"]) for r in as_list(statement["Resource"])):
        return None
    if not conditions_hold(statement.get("Condition", {}), call.get("context", {})):
        return None
    return action


def broken_rules(template, resolver):
    broken = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not resolver.truth(rule["RuleCondition"]):
            continue
        broken += [a["AssertDescription"] for a in rule["Assertions"] if not resolver.truth(a["Assert"])]
    return broken


def evaluate(statements, calls):
    used = set()
    denied = []
    for call in calls:
        granted = False
        for statement in statements:
            action = matching_action(statement, call)
            if action is not None:
                used.add((statement.get("Sid", "?"), action))
                granted = True
        if not granted and call not in denied:
            denied.append(call)
    unused = [
        f"{s.get('Sid', '?')}: {a}"
        for s in statements
        for a in as_list(s["Action"])
        if (s.get("Sid", "?"), a) not in used
    ]
    return denied, unused


def main():
    given = json.load(sys.stdin)
    with open(given["template"]) as f:
        template = yaml.load(f, Loader=Loader)
    resolver = Resolver(template, given)
    out = {"broken_rules": broken_rules(template, resolver), "properties": None}
    resource = template["Resources"][given["resource"]]
    if "Condition" not in resource or resolver.condition(resource["Condition"]):
        out["properties"] = resolver.resolve(resource["Properties"])
    if "calls" in given:
        statements = as_list(out["properties"]["PolicyDocument"]["Statement"])
        out["denied"], out["unused"] = evaluate(statements, given["calls"])
    json.dump(out, sys.stdout, indent=1)


main()
