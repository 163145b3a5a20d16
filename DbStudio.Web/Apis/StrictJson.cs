// Strict JSON bodies for the management endpoints: a body binds only when it is one JSON object whose keys are exactly
// the type's (as spelled on the wire, case and all), with every key that has no default present, and every value of
// the right JSON type. Otherwise the endpoint answers 400 naming the unknown, missing, repeated or mistyped keys —
// never a silent default (PUT …/access with {} used to switch every policy off) and never a 500.
//
// A handler takes Strict<T> instead of T; the group's StrictJson filter answers the 400 before the handler runs.
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;

namespace DbStudio.Web.Apis;

/// <summary>What was wrong with a body: key → messages, and one sentence naming them all.</summary>
public sealed record BodyProblem(Dictionary<string, string[]> Errors, string Message);

public interface IStrictBody
{
    BodyProblem? Problem { get; }
}

/// <summary>A JSON body bound strictly (see StrictJson). <see cref="Value"/> is only read when there is no problem.</summary>
public sealed class Strict<T> : IStrictBody, IEndpointParameterMetadataProvider where T : class
{
    private readonly T? _value;

    private Strict(T? value, BodyProblem? problem)
    {
        _value = value;
        Problem = problem;
    }

    public BodyProblem? Problem { get; }

    public T Value => _value ?? throw new BadHttpRequestException(Problem?.Message ?? "A JSON body is required");

    public static async ValueTask<Strict<T>?> BindAsync(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var (value, problem) = await StrictJson.ReadAsync<T>(context.Request, options, context.RequestAborted);
        return new Strict<T>(value, problem);
    }

    public static void PopulateMetadata(ParameterInfo parameter, EndpointBuilder builder) =>
        builder.Metadata.Add(new AcceptsMetadata(["application/json"], typeof(T)));
}

public static class StrictJson
{
    private static readonly Dictionary<JsonSerializerOptions, JsonSerializerOptions> StrictOptions = [];

    /// <summary>Answers 400 (a ValidationProblem) for a Strict&lt;T&gt; argument that did not bind.</summary>
    public static TBuilder WithStrictJson<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithStrictJson(p => TypedResults.ValidationProblem(p.Errors, p.Message));

    /// <summary>Answers with <paramref name="refuse"/> for a Strict&lt;T&gt; argument that did not bind.</summary>
    public static TBuilder WithStrictJson<TBuilder>(this TBuilder builder, Func<BodyProblem, IResult> refuse)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(async (ctx, next) =>
        {
            foreach (var argument in ctx.Arguments)
                if (argument is IStrictBody { Problem: { } problem }) return refuse(problem);
            return await next(ctx);
        });

    public static async Task<(T? Value, BodyProblem? Problem)> ReadAsync<T>(HttpRequest request, JsonSerializerOptions options,
        CancellationToken ct) where T : class
    {
        if (!request.HasJsonContentType())
            return (null, One("body", "The body must be JSON (Content-Type: application/json)"));
        JsonDocument doc;
        try
        {
            doc = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 64 }, ct);
        }
        catch (JsonException e)
        {
            return (null, One("body", $"The body is not valid JSON: {e.Message}"));
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                return (null, One("body", "The body must be a JSON object"));

            var info = options.GetTypeInfo(typeof(T));
            var known = info.Properties.ToDictionary(p => p.Name, StringComparer.Ordinal);
            var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var unknown = new List<string>();
            var repeated = new List<string>();
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name)) { repeated.Add(property.Name); errors[property.Name] = ["This key appears more than once"]; }
                else if (!known.ContainsKey(property.Name)) { unknown.Add(property.Name); errors[property.Name] = ["Unknown key"]; }
            }
            var missing = info.Properties.Where(p => IsRequired(p) && !seen.Contains(p.Name)).Select(p => p.Name).ToList();
            foreach (var m in missing) errors[m] = ["This key is required"];
            if (errors.Count > 0)
            {
                var parts = new List<string>();
                if (unknown.Count > 0) parts.Add($"unknown {Keys(unknown)}");
                if (missing.Count > 0) parts.Add($"missing {Keys(missing)}");
                if (repeated.Count > 0) parts.Add($"repeated {Keys(repeated)}");
                var expected = string.Join(", ", info.Properties.Select(p => p.Name));
                return (null, new BodyProblem(errors, $"The body has {string.Join("; ", parts)} (expected keys: {expected})"));
            }

            try
            {
                var value = doc.RootElement.Deserialize<T>(Strict(options));
                return value is null ? (null, One("body", "The body must be a JSON object")) : (value, null);
            }
            catch (JsonException e)
            {
                // "$.anon_select" → anon_select; say which JSON type the key takes.
                var key = e.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : "body";
                var type = known.TryGetValue(key.Split('.', '[')[0], out var p) ? p.PropertyType : null;
                return (null, One(key, $"{key} must be {Describe(type)}"));
            }
        }
    }

    private static bool IsRequired(JsonPropertyInfo p) => p.IsRequired || p.AssociatedParameter is { HasDefaultValue: false };

    private static string Keys(List<string> keys) => (keys.Count == 1 ? "key " : "keys ") + string.Join(", ", keys.Select(k => $"'{k}'"));

    private static BodyProblem One(string key, string message) => new(new() { [key] = [message] }, message);

    private static string Describe(Type? type)
    {
        var t = type is null ? null : Nullable.GetUnderlyingType(type) ?? type;
        var nullable = type is not null && (!type.IsValueType || Nullable.GetUnderlyingType(type) is not null);
        var what = t switch
        {
            null => "a value of another type",
            _ when t == typeof(bool) => "true or false",
            _ when t == typeof(string) => "a string",
            _ when t == typeof(Guid) => "a UUID string",
            _ when t.IsPrimitive || t == typeof(decimal) => "a number",
            _ => "a JSON object",
        };
        return nullable && t is not null ? $"{what} or null" : what;
    }

    private static JsonSerializerOptions Strict(JsonSerializerOptions options)
    {
        lock (StrictOptions)
        {
            if (!StrictOptions.TryGetValue(options, out var strict))
                StrictOptions[options] = strict = new JsonSerializerOptions(options)
                {
                    PropertyNameCaseInsensitive = false,
                    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
                    NumberHandling = JsonNumberHandling.Strict,
                    RespectNullableAnnotations = true,
                    RespectRequiredConstructorParameters = true,
                };
            return strict;
        }
    }
}
