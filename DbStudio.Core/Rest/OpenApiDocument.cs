// GET /db/{id}/rest/ — an OpenAPI 3 description of the project's tables, generated from the schema cache: like
// PostgREST (openapi-mode follow-privileges), only the tables, columns and operations the caller's role holds a
// privilege on, as PostgreSQL itself decides them (has_table_privilege / has_column_privilege, see SchemaCache). Functions
// appear under /rpc/{fn} only when the caller's role may execute them (has_function_privilege, see FunctionCatalog).
using System.Text.Json.Nodes;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;

namespace DbStudio.Core.Rest;

public static class OpenApiDocument
{
    public static JsonObject Build(string projectName, string restUrl, SchemaSnapshot snapshot, RestRole role, FunctionSnapshot? functions = null)
    {
        var paths = new JsonObject();
        var schemas = new JsonObject();
        foreach (var t in snapshot.Tables.Values.Where(t => t.VisibleTo(role)).OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            var usable = t.ColumnsFor(role).ToList();
            var readable = t.ColumnsFor(role, Privilege.Select).ToList();
            bool May(Privilege p) => t.Privileges.Any(role, p) || (p != Privilege.Delete && t.Columns.Any(c => c.Privileges.Any(role, p)));
            var props = new JsonObject();
            foreach (var c in usable)
            {
                var p = TypeOf(c);
                p["description"] = c.Type + (c.IsPrimaryKey ? " (primary key)" : "");
                if (c.Default is not null) p["default"] = c.Default;
                props[c.Name] = p;
            }
            schemas[t.Name] = new JsonObject
            {
                ["type"] = "object",
                ["properties"] = props,
                ["required"] = new JsonArray(usable.Where(c => c.NotNull && c.Default is null && !c.Generated)
                    .Select(c => (JsonNode)JsonValue.Create(c.Name)!).ToArray()),
            };
            var filters = new JsonArray(readable.Select(c => (JsonNode)new JsonObject
            {
                ["name"] = c.Name, ["in"] = "query", ["required"] = false,
                ["description"] = "Filter, e.g. eq.value, gt.value, in.(a,b), is.null",
                ["schema"] = new JsonObject { ["type"] = "string" },
            }).ToArray());
            JsonObject Op(string summary, bool withBody, bool read)
            {
                var parameters = (JsonArray)filters.DeepClone();
                if (read)
                    foreach (var n in new[] { "select", "order", "limit", "offset" })
                        parameters.Add(new JsonObject { ["name"] = n, ["in"] = "query", ["required"] = false, ["schema"] = new JsonObject { ["type"] = "string" } });
                var op = new JsonObject
                {
                    ["summary"] = summary, ["tags"] = new JsonArray(t.Name), ["parameters"] = parameters,
                    ["responses"] = new JsonObject
                    {
                        ["200"] = new JsonObject
                        {
                            ["description"] = "OK",
                            ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = new JsonObject
                                { ["type"] = "array", ["items"] = new JsonObject { ["$ref"] = $"#/components/schemas/{t.Name}" } } } },
                        },
                    },
                };
                if (withBody)
                    op["requestBody"] = new JsonObject
                    {
                        ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = new JsonObject { ["$ref"] = $"#/components/schemas/{t.Name}" } } },
                    };
                return op;
            }
            var item = new JsonObject();
            if (May(Privilege.Select)) item["get"] = Op($"Read rows of {t.Name}", false, true);
            if (t.IsTable)
            {
                if (May(Privilege.Insert)) item["post"] = Op($"Insert rows into {t.Name}", true, false);
                if (May(Privilege.Update)) item["patch"] = Op($"Update rows of {t.Name}", true, false);
                if (May(Privilege.Delete)) item["delete"] = Op($"Delete rows of {t.Name}", false, false);
            }
            paths["/" + t.Name] = item;
        }
        foreach (var (name, overloads) in (functions?.Functions ?? new Dictionary<string, IReadOnlyList<FunctionInfo>>())
                     .OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var callable = overloads.Where(f => f.Callable && f.ExecutableBy.Contains(role)).ToList();
            if (callable.Count > 0) paths["/rpc/" + name] = RpcPath(name, callable);
        }
        return new JsonObject
        {
            ["openapi"] = "3.0.3",
            ["info"] = new JsonObject { ["title"] = projectName, ["version"] = "1", ["description"] = "DbStudio REST API (PostgREST dialect)" },
            ["servers"] = new JsonArray(new JsonObject { ["url"] = restUrl }),
            ["paths"] = paths,
            ["components"] = new JsonObject
            {
                ["schemas"] = schemas,
                ["securitySchemes"] = new JsonObject
                {
                    ["apikey"] = new JsonObject { ["type"] = "apiKey", ["in"] = "header", ["name"] = "apikey" },
                    ["bearer"] = new JsonObject { ["type"] = "http", ["scheme"] = "bearer" },
                },
            },
            ["security"] = new JsonArray(new JsonObject { ["apikey"] = new JsonArray() }, new JsonObject { ["bearer"] = new JsonArray() }),
        };
    }

    /// <summary>POST with the arguments as a JSON object (each overload's parameters), GET when every overload is STABLE or IMMUTABLE.</summary>
    private static JsonObject RpcPath(string name, IReadOnlyList<FunctionInfo> overloads)
    {
        var props = new JsonObject();
        foreach (var p in overloads.SelectMany(f => f.Params).Where(p => p.Name.Length > 0))
            props[p.Name] = new JsonObject { ["type"] = "string", ["format"] = p.Type };
        var required = overloads.Count == 1
            ? new JsonArray(overloads[0].Params.Where(p => p.Required && p.Name.Length > 0).Select(p => (JsonNode)JsonValue.Create(p.Name)!).ToArray())
            : new JsonArray();
        JsonObject Responses() => new()
        {
            ["200"] = new JsonObject { ["description"] = "OK" },
            ["204"] = new JsonObject { ["description"] = "No content (void)" },
        };
        var description = string.Join("; ", overloads.Select(f => $"{f.Signature} returns {(f.ReturnsSet ? "setof " : "")}{f.ReturnType} ({f.VolatilityName})"));
        var item = new JsonObject
        {
            ["post"] = new JsonObject
            {
                ["summary"] = $"Call {name}", ["description"] = description, ["tags"] = new JsonArray("(rpc) " + name),
                ["requestBody"] = new JsonObject
                {
                    ["required"] = true,
                    ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = new JsonObject
                        { ["type"] = "object", ["properties"] = props, ["required"] = required } } },
                },
                ["responses"] = Responses(),
            },
        };
        if (overloads.All(f => f.IsReadOnly))
            item["get"] = new JsonObject
            {
                ["summary"] = $"Call {name}", ["description"] = description, ["tags"] = new JsonArray("(rpc) " + name),
                ["parameters"] = new JsonArray(overloads.SelectMany(f => f.Params).Where(p => p.Name.Length > 0).Select(p => p.Name).Distinct()
                    .Select(n => (JsonNode)new JsonObject
                    {
                        ["name"] = n, ["in"] = "query", ["required"] = false, ["schema"] = new JsonObject { ["type"] = "string" },
                    }).ToArray()),
                ["responses"] = Responses(),
            };
        return item;
    }

    private static JsonObject TypeOf(ColumnInfo c) => c.TypeOid switch
    {
        PgType.Bool => new JsonObject { ["type"] = "boolean" },
        PgType.Int2 or PgType.Int4 => new JsonObject { ["type"] = "integer", ["format"] = "int32" },
        PgType.Int8 => new JsonObject { ["type"] = "integer", ["format"] = "int64" },
        PgType.Float4 or PgType.Float8 => new JsonObject { ["type"] = "number" },
        PgType.Numeric => new JsonObject { ["type"] = "number", ["format"] = "decimal" },
        PgType.Json or PgType.Jsonb => new JsonObject(),
        PgType.Uuid => new JsonObject { ["type"] = "string", ["format"] = "uuid" },
        PgType.Date => new JsonObject { ["type"] = "string", ["format"] = "date" },
        PgType.Timestamptz or PgType.Timestamp => new JsonObject { ["type"] = "string", ["format"] = "date-time" },
        _ => new JsonObject { ["type"] = "string" },
    };
}
