// The Access tab's settings over HTTP (DESIGN §7): GET|PUT /api/projects/{id}/tables/{table}/access.
using System.Security.Claims;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Http.HttpResults;

namespace DbStudio.Web.Apis;

public static class AccessApi
{
    public static RouteGroupBuilder MapAccessApi(this IEndpointRouteBuilder app)
    {
        // PUT is a full replace: the body must carry every key, spelled as in GET (StrictJson), or it is refused with 400.
        var g = app.MapGroup("/api/projects/{id}/tables/{table}/access").RequireAuthorization().WithTags("Access").WithStrictJson();
        g.MapGet("/", Get);
        g.MapPut("/", Put);
        return g;
    }

    public static async Task<Results<Ok<AccessSettings>, NotFound>> Get(string id, string table, ClaimsPrincipal user,
        ProjectService projects, AccessPolicies access, CancellationToken ct)
    {
        if (!await projects.IsOwnerAsync(ProjectsApi.UserId(user), id, ct)) return TypedResults.NotFound();
        return await access.GetAsync(id, table, ct) is { } s ? TypedResults.Ok(s) : TypedResults.NotFound();
    }

    public static async Task<Results<Ok<AccessSettings>, NotFound, ValidationProblem>> Put(string id, string table, Strict<AccessSettings> strict,
        ClaimsPrincipal user, ProjectService projects, AccessPolicies access, CancellationToken ct)
    {
        var body = strict.Value;
        if (!await projects.IsOwnerAsync(ProjectsApi.UserId(user), id, ct)) return TypedResults.NotFound();
        var (settings, error) = await access.PutAsync(id, table, body, ct);
        if (error is not null) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["user_id_col"] = [error] });
        return settings is null ? TypedResults.NotFound() : TypedResults.Ok(settings);
    }
}
