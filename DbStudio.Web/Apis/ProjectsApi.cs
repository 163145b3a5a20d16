// Platform management API (DESIGN §7): projects of the signed-in platform user, their SQL console and
// the assistant's <sql> blocks. Another user's project answers 404, as if it did not exist.
using System.Security.Claims;
using DbStudio.Core;
using DbStudio.Core.Console;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace DbStudio.Web.Apis;

public sealed record CreateProjectRequest(string? Name);
public sealed record SqlRequest(string? Sql);
public sealed record AssistantRequest(string? Text);
public sealed record MoveRequest(string? Server);
public sealed record SqlResponse(List<StatementResult> Results);

public static class ProjectsApi
{
    public static RouteGroupBuilder MapProjectsApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/projects").RequireAuthorization().WithTags("Projects").WithStrictJson();
        g.MapPost("/", Create).AddEndpointFilter(LimitsEndpoints.RefusedByLimits);
        g.MapGet("/", List);
        g.MapGet("/{id}", Get);
        g.MapDelete("/{id}", Delete);
        g.MapPost("/{id}/sql", RunSql);
        g.MapPost("/{id}/assistant/sql", RunAssistant);
        g.MapPost("/{id}/keys/{which}/rotate", RotateKey);
        g.MapPost("/{id}/owner/reset-password", ResetOwnerPassword);
        g.MapPost("/{id}/move", Move);
        return g;
    }

    public static async Task<Results<Created<ProjectInfo>, ValidationProblem>> Create(
        Strict<CreateProjectRequest> strict, ClaimsPrincipal user, ProjectService projects, HttpRequest req, IOptions<DbStudioOptions> opt,
        CancellationToken ct)
    {
        var body = strict.Value;
        if (ProjectService.ValidateName(body.Name) is { } problem)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["name"] = [problem] });
        var p = await projects.CreateAsync(UserId(user), body.Name!, BaseUrl(req, opt), ct);
        return TypedResults.Created($"/api/projects/{p.Id}", p);
    }

    public static async Task<Ok<List<ProjectInfo>>> List(ClaimsPrincipal user, ProjectService projects, HttpRequest req,
        IOptions<DbStudioOptions> opt, CancellationToken ct) =>
        TypedResults.Ok(await projects.ListAsync(UserId(user), BaseUrl(req, opt), ct));

    public static async Task<Results<Ok<ProjectInfo>, NotFound>> Get(string id, ClaimsPrincipal user, ProjectService projects,
        HttpRequest req, IOptions<DbStudioOptions> opt, CancellationToken ct) =>
        await projects.GetAsync(UserId(user), id, BaseUrl(req, opt), ct) is { } p ? TypedResults.Ok(p) : TypedResults.NotFound();

    public static async Task<Results<NoContent, NotFound>> Delete(string id, ClaimsPrincipal user, ProjectService projects,
        CancellationToken ct) =>
        await projects.DeleteAsync(UserId(user), id, ct) ? TypedResults.NoContent() : TypedResults.NotFound();

    public static async Task<Results<Ok<SqlResponse>, NotFound, ValidationProblem>> RunSql(string id, Strict<SqlRequest> strict,
        ClaimsPrincipal user, ProjectService projects, SqlConsole console, CancellationToken ct)
    {
        var body = strict.Value;
        if (body.Sql is null) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["sql"] = ["sql is required"] });
        if (!await projects.IsOwnerAsync(UserId(user), id, ct)) return TypedResults.NotFound();
        return TypedResults.Ok(new SqlResponse(await console.RunAsync(id, body.Sql, ct)));
    }

    public static async Task<Results<Ok<AssistantRun>, NotFound, ValidationProblem>> RunAssistant(string id, Strict<AssistantRequest> strict,
        ClaimsPrincipal user, ProjectService projects, AssistantSql assistant, CancellationToken ct)
    {
        var body = strict.Value;
        if (body.Text is null) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["text"] = ["text is required"] });
        if (!await projects.IsOwnerAsync(UserId(user), id, ct)) return TypedResults.NotFound();
        return TypedResults.Ok(await assistant.RunAsync(id, body.Text, ct));
    }

    /// <summary>POST /api/projects/{id}/keys/anon|api/rotate: a new key; the old one stops working at once.</summary>
    public static async Task<Results<Ok<ProjectInfo>, NotFound, ValidationProblem>> RotateKey(string id, string which, ClaimsPrincipal user,
        ProjectService projects, HttpRequest req, IOptions<DbStudioOptions> opt, CancellationToken ct)
    {
        ProjectSecretKind? kind = which switch { "anon" => ProjectSecretKind.AnonKey, "api" => ProjectSecretKind.ApiKey, _ => null };
        if (kind is null) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["which"] = ["anon or api"] });
        return await projects.RotateKeyAsync(UserId(user), id, kind.Value, BaseUrl(req, opt), ct) is { } p ? TypedResults.Ok(p) : TypedResults.NotFound();
    }

    /// <summary>POST /api/projects/{id}/owner/reset-password: a new owner password, so a new Connection URL.</summary>
    public static async Task<Results<Ok<ProjectInfo>, NotFound>> ResetOwnerPassword(string id, ClaimsPrincipal user, ProjectService projects,
        HttpRequest req, IOptions<DbStudioOptions> opt, CancellationToken ct) =>
        await projects.ResetOwnerPasswordAsync(UserId(user), id, BaseUrl(req, opt), ct) is { } p ? TypedResults.Ok(p) : TypedResults.NotFound();

    /// <summary>Moves the project to another PostgreSQL server of the pool (README: Several PostgreSQL servers).</summary>
    public static async Task<Results<Ok<DbStudio.Core.Servers.MoveReport>, NotFound, ValidationProblem, Conflict<string>>> Move(string id,
        Strict<MoveRequest> strict, ClaimsPrincipal user, ProjectService projects, DbStudio.Core.Servers.ProjectMover mover, CancellationToken ct)
    {
        if (!await projects.IsOwnerAsync(UserId(user), id, ct)) return TypedResults.NotFound();
        if (string.IsNullOrWhiteSpace(strict.Value.Server))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["server"] = ["server is required"] });
        try { return TypedResults.Ok(await mover.MoveAsync(id, strict.Value.Server, ct)); }
        catch (DbStudio.Core.Servers.MoveRefusedException e) { return TypedResults.Conflict(e.Message); }
    }

    internal static string UserId(ClaimsPrincipal user) =>
        user.FindFirstValue(ClaimTypes.NameIdentifier) ?? throw new InvalidOperationException("authenticated user has no id");

    internal static string BaseUrl(HttpRequest req, IOptions<DbStudioOptions> opt) =>
        opt.Value.PublicBaseUrl ?? $"{req.Scheme}://{req.Host}{req.PathBase}";
}
